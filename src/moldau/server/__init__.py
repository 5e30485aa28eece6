"""moldau.server"""
