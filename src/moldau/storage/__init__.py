"""moldau.storage"""
