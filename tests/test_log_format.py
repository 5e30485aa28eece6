"""JSON log lines carry the text lines' fields, one object per line."""

from __future__ import annotations

import json
import logging
import sys

from moldau.log_format import JsonFormatter


def test_a_json_line_has_the_text_lines_fields():
    record = logging.LogRecord("moldau.x", logging.WARNING, __file__, 1, "hello %s\nworld", ("you",), None)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["level"] == "WARNING" and parsed["logger"] == "moldau.x"
    assert parsed["message"] == "hello you\nworld"
    assert parsed["time"].endswith("Z")


def test_a_traceback_goes_into_exception():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("moldau", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    parsed = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in parsed["exception"]
