"""moldau.replication"""
