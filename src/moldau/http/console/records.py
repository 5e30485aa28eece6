"""The message browser's reads: bounded, through the log's own read path.

A page reads whole batches with :meth:`moldau.storage.log.Log.read` (the fetch path's
read, up to the high watermark: what a read_uncommitted consumer would see; the slice's
bytes are ``pread`` in a worker thread) in chunks of at most :data:`CHUNK_BYTES`,
decodes them with :func:`moldau.records.record.decode_records`, and stops at
:data:`MAX_RECORDS` records or :data:`MAX_PAGE_BYTES` bytes read, whichever comes first
(only a first batch larger than the whole bound is read beyond it, alone, as a fetch
returns it). A search reads on from its start offset over at most
:data:`MAX_SCAN_BYTES` (yielding to the event loop between chunks) and says where it
stopped, so the next search can go on from there. Nothing ever holds more than one
page's or one chunk's bytes, whatever the topic's size.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from moldau.records.batch import iter_batches
from moldau.records.record import Record, decode_records

#: records shown per page, at most
MAX_RECORDS = 100
#: bytes of log read for one page, at most (beyond one batch larger than that)
MAX_PAGE_BYTES = 1 << 20
#: bytes of log a search reads, at most
MAX_SCAN_BYTES = 16 << 20
#: bytes read per step
CHUNK_BYTES = 256 << 10
#: bytes of one key, value or header shown (the rest is cut, and said so)
MAX_SHOWN_BYTES = 4096
FORMATS = ("auto", "text", "json", "hex")


@dataclass
class Page:
    records: list[Record] = field(default_factory=list)
    #: the offset to read from next (past the last record looked at)
    next_offset: int = 0
    bytes_read: int = 0
    #: True when the read stopped on a bound before reaching the high watermark
    truncated: bool = False


class Source(Protocol):
    """One partition as the browser reads it: its offsets and a bounded read of whole
    batches (``min_one``: the first batch even if larger than ``max_bytes``)."""

    log_start_offset: int
    high_watermark: int

    async def read(self, offset: int, max_bytes: int, min_one: bool) -> bytes | None: ...


class LocalSource:
    """A partition with a replica on this broker: the log's own read, up to its high watermark."""

    def __init__(self, partition: Any) -> None:
        self.partition = partition
        self.log_start_offset = partition.log.log_start_offset
        self.high_watermark = partition.high_watermark

    async def read(self, offset: int, max_bytes: int, min_one: bool) -> bytes | None:
        info = self.partition.log.read(offset, max_bytes, max_offset=self.high_watermark, min_one_message=min_one)
        if info.slice is None:
            return None
        # the bytes themselves in a worker thread (a cold segment is a disk read, and
        # nothing blocking runs on the loop); the slice keeps its file open meanwhile
        return await asyncio.to_thread(info.slice.read)


async def read_page(source: Source, offset: int, limit: int, *, query: bytes | None = None,
                    max_bytes: int = MAX_PAGE_BYTES) -> Page:
    """Up to ``limit`` records from ``offset`` (matching ``query`` when given), below the
    high watermark, reading at most ``max_bytes``. Control records are skipped."""
    hw = source.high_watermark
    offset = max(offset, source.log_start_offset)
    page = Page(next_offset=offset)
    while offset < hw and len(page.records) < limit:
        budget = min(CHUNK_BYTES, max_bytes - page.bytes_read)
        first = page.bytes_read == 0
        if budget <= 0:
            page.truncated = True
            break
        # only the first read may exceed the budget (by one batch), so a batch larger
        # than the bound is still shown, alone, and the browser never gets stuck
        data = await source.read(offset, budget, first)
        if not data:
            page.truncated = not first
            break
        page.bytes_read += len(data)
        progressed = offset
        for batch in iter_batches(data, allow_partial_tail=True):
            if batch.is_control:
                progressed = max(progressed, batch.next_offset)
                continue
            for record in decode_records(batch):
                if record.offset < offset:
                    continue
                if record.offset >= hw:
                    break
                progressed = record.offset + 1
                if query is None or matches(record, query):
                    page.records.append(record)
                    if len(page.records) >= limit:
                        break
            if len(page.records) >= limit:
                break
            progressed = max(progressed, min(batch.next_offset, hw))
        if progressed <= offset:
            break  # nothing whole was readable: never spin
        offset = progressed
    page.next_offset = offset
    return page


async def search(source: Source, offset: int, limit: int, query: bytes) -> Page:
    """:func:`read_page` for records holding ``query``, over at most
    :data:`MAX_SCAN_BYTES`, one chunk per turn of the event loop."""
    found = Page(next_offset=offset)
    while found.bytes_read < MAX_SCAN_BYTES and len(found.records) < limit:
        step = await read_page(source, found.next_offset, limit - len(found.records), query=query,
                               max_bytes=CHUNK_BYTES)
        found.records.extend(step.records)
        found.bytes_read += step.bytes_read
        if step.next_offset <= found.next_offset:
            found.next_offset = step.next_offset
            break
        found.next_offset = step.next_offset
        await asyncio.sleep(0)
    found.truncated = found.next_offset < source.high_watermark and len(found.records) < limit
    return found


def matches(record: Record, query: bytes) -> bool:
    if record.key is not None and query in record.key:
        return True
    if record.value is not None and query in record.value:
        return True
    return any(query in k.encode("utf-8", "surrogateescape") or (v is not None and query in v)
               for k, v in record.headers)


def render(data: bytes | None, fmt: str) -> tuple[str, str]:
    """(the format used, the text to show) for a key, value or header value; the text
    is plain and must still be escaped. ``auto`` picks JSON, then text, then hex."""
    if data is None:
        return "null", "null"
    cut = len(data) > MAX_SHOWN_BYTES
    shown = data[:MAX_SHOWN_BYTES]
    suffix = f"\n… ({len(data)} bytes, first {MAX_SHOWN_BYTES} shown)" if cut else ""
    if fmt == "hex":
        return "hex", _hex(shown) + suffix
    text = None
    try:
        text = shown.decode("utf-8")
    except UnicodeDecodeError:
        if fmt == "auto":
            return "hex", _hex(shown) + suffix
    if text is None:
        text = shown.decode("utf-8", "replace")
    if fmt in ("auto", "json") and not cut:
        try:
            return "json", json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            if fmt == "json":
                return "text", text + "\n(not JSON)"
    if fmt == "auto" and not text.isprintable() and not all(c.isprintable() or c in "\r\n\t" for c in text):
        return "hex", _hex(shown) + suffix
    return "text", text + suffix


def _hex(data: bytes) -> str:
    lines = []
    for i in range(0, len(data), 16):
        chunk = data[i:i + 16]
        lines.append(f"{i:08x}  {chunk.hex(' '):<47}  " + "".join(chr(b) if 32 <= b < 127 else "." for b in chunk))
    return "\n".join(lines)
