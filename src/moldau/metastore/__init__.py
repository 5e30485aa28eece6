"""moldau.metastore"""
