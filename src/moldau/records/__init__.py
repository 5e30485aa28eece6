"""moldau.records"""
