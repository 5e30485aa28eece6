"""Sockets, connections, ordered responses and zero-copy sends."""
