"""The console's pure parts: how values are shown (text, JSON, hex, cut at 4 KiB),
consumer-protocol assignments decoded defensively, escaping and links. Cost: <1 s."""

from __future__ import annotations

import json
import struct

from moldau.http.console.html import h, url
from moldau.http.console.pages_groups import decode_assignment
from moldau.http.console.records import MAX_SHOWN_BYTES, matches, render
from moldau.records.record import Record


def test_auto_picks_json_then_text_then_hex() -> None:
    assert render(b'{"a": [1, 2]}', "auto") == ("json", json.dumps({"a": [1, 2]}, indent=2))
    assert render("grüße".encode(), "auto") == ("text", "grüße")
    assert render(b"\x00\xff\x10", "auto")[0] == "hex"
    assert render(b"a\x00b", "auto")[0] == "hex"  # valid UTF-8 but not printable
    assert render(None, "auto") == ("null", "null")
    assert render(b"42", "text") == ("text", "42")


def test_hex_dump_has_offsets_bytes_and_printables() -> None:
    fmt, text = render(bytes(range(0x41, 0x41 + 20)), "hex")
    assert fmt == "hex"
    first, second = text.splitlines()
    assert first.startswith("00000000  41 42 43") and first.endswith("ABCDEFGHIJKLMNOP")
    assert second.startswith("00000010  51 52 53 54")


def test_json_format_on_non_json_says_so() -> None:
    assert render(b"not json", "json") == ("text", "not json\n(not JSON)")


def test_large_values_are_cut_and_say_their_length() -> None:
    fmt, text = render(b"x" * (MAX_SHOWN_BYTES * 3), "auto")
    assert fmt == "text" and len(text) < MAX_SHOWN_BYTES + 100
    assert f"({MAX_SHOWN_BYTES * 3} bytes, first {MAX_SHOWN_BYTES} shown)" in text


def test_search_looks_at_keys_values_and_headers() -> None:
    record = Record(0, 0, b"key-1", b"value-2", [("trace", b"header-3"), ("nothing", None)])
    assert all(matches(record, q) for q in (b"key-1", b"value-2", b"header-3", b"trace"))
    assert not matches(record, b"absent")


def _assignment(topics: list[tuple[str, list[int]]]) -> bytes:
    out = struct.pack(">hi", 0, len(topics))
    for name, partitions in topics:
        out += struct.pack(">h", len(name)) + name.encode() + struct.pack(f">i{len(partitions)}i", len(partitions),
                                                                           *partitions)
    return out + struct.pack(">i", -1)


def test_assignments_decode_and_garbage_decodes_to_nothing() -> None:
    assert decode_assignment(_assignment([("a", [0, 2]), ("b", [1])])) == [("a", [0, 2]), ("b", [1])]
    assert decode_assignment(b"") == []
    assert decode_assignment(b"\x00\x00\x7f\xff\xff\xff") == []  # a count far past the bytes
    assert decode_assignment(_assignment([("a", [0])])[:-7]) == []


def test_escaping_and_links() -> None:
    assert h('<a href="x">\'&') == "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;"
    assert url("groups", "g/<1>", "reset") == "/console/groups/g%2F%3C1%3E/reset"
    assert url("topics", q="a b&c", page=2, empty="") == "/console/topics?q=a+b%26c&page=2"


def test_timestamps_shown_as_utc_or_as_they_are() -> None:
    from moldau.http.console.pages_topics import _when

    assert _when(0) == "1970-01-01T00:00:00.000+00:00"
    assert _when(-1) == "none"
    assert _when(10**18) == str(10**18)  # past year 9999: the number itself
