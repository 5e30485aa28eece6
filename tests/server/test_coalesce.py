"""Joining small chunks before TLS encrypts each write into records of its own."""

from __future__ import annotations

from moldau.server.connection import TLS_RECORD, coalesce


def test_small_runs_join_large_chunks_pass_through() -> None:
    big = b"B" * (TLS_RECORD * 4)
    chunks = [b"a", b"bc", big, b"d" * 10, b"e", memoryview(b"f")]
    out = coalesce(chunks)
    assert out[0] == b"abc" and out[1] is big and out[2] == b"d" * 10 + b"ef"
    assert b"".join(bytes(c) for c in out) == b"".join(bytes(c) for c in chunks)


def test_runs_are_cut_at_a_record() -> None:
    chunks = [b"x" * 5000] * 8
    out = coalesce(chunks)
    assert all(len(c) <= TLS_RECORD + 5000 for c in out) and len(out) == 2
    assert b"".join(out) == b"x" * 40000
