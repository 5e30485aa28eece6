"""moldau.handlers"""
