"""Topics: the paginated list, one topic's partitions and configs, the message browser,
and producing a test message."""

from __future__ import annotations

import asyncio
import datetime
import time
from typing import Any

from aiohttp import web

from moldau.controller.controller import INTERNAL_TOPICS
from moldau.records.errors import RecordsError
from moldau.records.record import RecordInput, build_batch
from moldau.security.acl import AclOperation, ResourceType
from moldau.storage.errors import StorageError

from . import Ctx
from .calls import call, part, request
from .html import h, hidden, link, size, table, url
from .pages_cluster import config_table, describe_configs, error_name
from .records import FORMATS, MAX_RECORDS, LocalSource, read_page, render, search

PAGE_SIZE = 50
PRODUCE, FETCH, LIST_OFFSETS, CREATE_TOPICS = 0, 1, 2, 19
#: bytes a test message may carry (key + value + headers)
MAX_TEST_MESSAGE = 1 << 20


def _int(ctx: Ctx, name: str, default: int | None) -> int | None:
    raw = ctx.request.query.get(name, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an integer") from None


def _topic(ctx: Ctx, operation: AclOperation = AclOperation.DESCRIBE) -> Any:
    name = ctx.request.match_info["topic"]
    record = ctx.broker.topics.get(name)
    if record is None or not ctx.access.allowed(ctx.connection, operation, ResourceType.TOPIC, name):
        # as Kafka: an unauthorized topic reads as an unknown one
        raise web.HTTPNotFound(text="no such topic (or not authorized)")
    return record


async def topics(ctx: Ctx) -> web.StreamResponse:
    broker = ctx.broker
    query = ctx.request.query.get("q", "")
    page_no = max(1, _int(ctx, "page", 1) or 1)
    names = sorted(n for n in broker.topics if query in n)
    if broker.authorizer is not None:
        names = [n for n in names if ctx.access.allowed(ctx.connection, AclOperation.DESCRIBE, ResourceType.TOPIC, n)]
    pages = max(1, -(-len(names) // PAGE_SIZE))
    page_no = min(page_no, pages)
    rows = []
    for name in names[(page_no - 1) * PAGE_SIZE: page_no * PAGE_SIZE]:
        record = broker.topics.get(name)
        if record is None:
            continue
        states = record.partitions.values()
        replication = max((len(s.replicas) for s in states), default=0)
        under = sum(1 for s in states if len(s.isr) < len(s.replicas))
        local = [broker.partitions.get((name, i)) for i in record.partitions]
        hosted = [p for p in local if p is not None and not p.log.closed]
        messages = sum(p.high_watermark - p.log.log_start_offset for p in hosted)
        rows.append([
            link(name, url("topics", name)) + (' <span class="muted">internal</span>' if name in INTERNAL_TOPICS else ""),
            h(len(record.partitions)), h(replication), h(under) if under else "0",
            h(f"{messages:,}") + ("" if len(hosted) == len(local) else ' <span class="muted">(here)</span>'),
            h(size(sum(p.log.size_in_bytes for p in hosted))),
        ])
    nav = []
    if page_no > 1:
        nav.append(link("« previous", url("topics", q=query, page=page_no - 1)))
    nav.append(f"page {page_no} of {pages} ({len(names)} topics)")
    if page_no < pages:
        nav.append(link("next »", url("topics", q=query, page=page_no + 1)))
    search_form = (f'<form method="get" action="{h(url("topics"))}"><input name="q" value="{h(query)}" '
                   'placeholder="name contains"> <button type="submit">Filter</button></form>')
    create_form = (f'<h2>Create a topic</h2><form method="post" action="{h(url("topics"))}" id="create-topic">'
                   f'{hidden("csrf", ctx.session.csrf)}<label>Name <input name="name" required '
                   'pattern="[a-zA-Z0-9._-]{1,249}"></label> <label>Partitions <input name="partitions" size="4" '
                   'placeholder="default"></label> <label>Replication factor <input name="replication" size="3" '
                   'placeholder="default"></label> <button type="submit">Create</button></form>')
    body = (search_form + f'<p class="pager">{" · ".join(nav)}</p>'
            + table(["topic", "partitions", "replicas", "under-replicated", "messages", "size"], rows, "topics")
            + create_form)
    return ctx.render("Topics", body, active="topics")


async def create_topic(ctx: Ctx) -> web.StreamResponse:
    """CreateTopics through its handler: validated, authorized (CREATE) and, in a
    cluster, forwarded to the controller exactly as a client's request would be."""
    form = await ctx.request.post()
    name = str(form.get("name", "")).strip()
    try:
        partitions = int(str(form.get("partitions", "")).strip() or -1)
        replication = int(str(form.get("replication", "")).strip() or -1)
    except ValueError:
        raise web.HTTPBadRequest(text="partitions and replication factor are integers") from None
    body = request(CREATE_TOPICS, topics=[part(CREATE_TOPICS, "topics", name=name, num_partitions=partitions,
                                                replication_factor=replication, assignments=[], configs=[])],
                   timeout_ms=30_000, validate_only=False)
    answer = await call(ctx.broker, ctx.connection, CREATE_TOPICS, 5, body)
    result = answer.topics[0]
    if result.error_code:
        text = f'<p class="msg">Not created: {h(error_name(result.error_code))} {h(result.error_message or "")}</p>'
        return ctx.render("Topics", text + link("back", url("topics")), active="topics", status=400)
    for _ in range(50):  # in a cluster, this broker's image learns of it a moment later
        if name in ctx.broker.topics:
            break
        await asyncio.sleep(0.1)
    raise web.HTTPSeeOther(url("topics", name))


async def topic(ctx: Ctx) -> web.StreamResponse:
    broker = ctx.broker
    record = _topic(ctx)
    name = record.name
    rows = []
    for index in sorted(record.partitions):
        state = record.partitions[index]
        partition = broker.partitions.get((name, index))
        if partition is not None and not partition.log.closed:
            log = partition.log
            offsets = [h(log.log_start_offset), h(partition.high_watermark), h(log.log_end_offset),
                       h(size(log.size_in_bytes)), h(len(log.segments))]
        else:
            offsets = ['<span class="muted">not on this broker</span>', "", "", "", ""]
        rows.append([
            link(index, url("topics", name, "messages", partition=index)),
            h(state.leader if state.leader >= 0 else "none"), h(state.leader_epoch),
            h(", ".join(map(str, state.replicas))), h(", ".join(map(str, state.isr))), *offsets,
        ])
    configs = await describe_configs(ctx, 2, name)
    body = (f'<p>id <code>{h(record.topic_id)}</code> · {link("browse messages", url("topics", name, "messages"))}</p>'
            + "<h2>Partitions</h2>"
            + table(["partition", "leader", "epoch", "replicas", "ISR", "log start", "high watermark",
                     "log end", "size", "segments"], rows, "partitions")
            + "<h2>Produce a test message</h2>" + _produce_form(ctx, record)
            + "<h2>Configs</h2>" + config_table(configs))
    return ctx.render(f"Topic {name}", body, active="topics")


def _produce_form(ctx: Ctx, record: Any) -> str:
    options = "".join(f'<option value="{i}">{i}</option>' for i in sorted(record.partitions))
    return (f'<form method="post" action="{h(url("topics", record.name, "produce"))}" '
            f'data-confirm="Produce this message to {h(record.name)}?">{hidden("csrf", ctx.session.csrf)}'
            f'<p><label>Partition <select name="partition">{options}</select></label> '
            '<label>Key <input name="key" size="20"></label></p>'
            '<p><label>Value<br><textarea name="value" rows="3" cols="60"></textarea></label></p>'
            '<p><label>Headers (one <code>name=value</code> a line)<br>'
            '<textarea name="headers" rows="2" cols="60"></textarea></label></p>'
            '<p><button type="submit" id="produce">Produce</button></p></form>')


async def produce(ctx: Ctx) -> web.StreamResponse:
    broker = ctx.broker
    record = _topic(ctx)
    form = await ctx.request.post()
    try:
        index = int(str(form.get("partition", "0")))
    except ValueError:
        raise web.HTTPBadRequest(text="partition must be an integer") from None
    state = record.partitions.get(index)
    if state is None:
        raise web.HTTPBadRequest(text="no such partition")
    key = str(form.get("key", "")).encode() or None
    value = str(form.get("value", "")).replace("\r\n", "\n").encode()
    headers = []
    for line in str(form.get("headers", "")).splitlines():
        if line.strip():
            hk, _, hv = line.partition("=")
            headers.append((hk.strip(), hv.encode()))
    if len(value) + len(key or b"") + sum(len(k) + len(v) for k, v in headers) > MAX_TEST_MESSAGE:
        raise web.HTTPRequestEntityTooLarge(MAX_TEST_MESSAGE, len(value))
    batch = bytearray(build_batch([RecordInput(key, value, headers, int(time.time() * 1000))]))
    body = request(PRODUCE, transactional_id=None, acks=-1, timeout_ms=10_000, topic_data=[
        part(PRODUCE, "topic_data", name=record.name, partition_data=[
            part(PRODUCE, "topic_data", "partition_data", index=index, records=memoryview(batch))])])
    try:  # the leader appends: here, or at the leader as this principal
        answer = await call(broker, ctx.connection, PRODUCE, 9, body, state.leader if state.leader >= 0 else None)
        result = answer.responses[0].partition_responses[0]
        code, message, offset = result.error_code, result.error_message, result.base_offset
    except (OSError, TimeoutError) as exc:
        code, message, offset = -1, str(exc), -1
    if code:
        text = f'<p class="msg">Not produced: {h(error_name(code))} {h(message or "")}</p>'
        return ctx.render(f"Topic {record.name}", text + link("back", url("topics", record.name)),
                          active="topics", status=400 if code > 0 else 502)
    target = url("topics", record.name, "messages", partition=index, offset=offset, produced=offset)
    raise web.HTTPSeeOther(target)


def _parse_time(text: str) -> int | None:
    """Milliseconds since the epoch from digits (ms) or an ISO date-time (UTC if naive)."""
    text = text.strip()
    if not text:
        return None
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise web.HTTPBadRequest(text="time: milliseconds or an ISO date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp() * 1000)


async def messages(ctx: Ctx) -> web.StreamResponse:
    broker = ctx.broker
    record = _topic(ctx, AclOperation.READ)
    name = record.name
    q = ctx.request.query
    index = _int(ctx, "partition", 0) or 0
    if index not in record.partitions:
        raise web.HTTPNotFound(text="no such partition")
    limit = min(MAX_RECORDS, max(1, _int(ctx, "limit", 20) or 20))
    fmt = q.get("format", "auto") if q.get("format", "auto") in FORMATS else "auto"
    query = q.get("q", "")
    timestamp = _parse_time(q.get("time", ""))
    produced = _int(ctx, "produced", None)
    controls = _browse_form(ctx, record, index, limit, fmt, query, q.get("time", ""))
    partition = broker.partitions.get((name, index))
    source: LocalSource | RemoteSource
    if partition is not None and not partition.log.closed:
        source = LocalSource(partition)
    else:  # no replica here: read at the leader with Fetch, as this principal
        leader = record.partitions[index].leader
        if leader < 0:
            body = controls + f'<p class="msg">Partition {index} has no leader now.</p>'
            return ctx.render(f"{name} / {index}", body, active="topics")
        source = RemoteSource(ctx, name, index, leader)
        error = await source.open()
        if error:
            body = controls + f'<p class="msg">Broker {leader} (the leader) answered: {h(error)}</p>'
            return ctx.render(f"{name} / {index}", body, active="topics", status=502)
    start, hw = source.log_start_offset, source.high_watermark
    offset = _int(ctx, "offset", None)
    if timestamp is not None:
        offset = await _offset_for_time(ctx, source, partition, name, index, timestamp)
    if offset is None:
        offset = max(start, hw - limit)  # the newest page
    offset = min(max(offset, start), hw)
    try:
        if query:
            page = await search(source, offset, limit, query.encode())
        else:
            page = await read_page(source, offset, limit)
    except (RecordsError, StorageError) as exc:  # retention moved the start, a corrupt batch, ...
        body = controls + f'<p class="msg">Could not read from offset {offset}: {h(exc)}</p>'
        return ctx.render(f"{name} / {index}", body, active="topics", status=500)
    rows = []
    for rec in page.records:
        when = _when(rec.timestamp)
        key_fmt, key_text = render(rec.key, fmt)
        value_fmt, value_text = render(rec.value, fmt)
        header_text = "\n".join(f"{k}: {render(v, 'text' if fmt == 'auto' else fmt)[1]}" for k, v in rec.headers)
        mark = ' class="produced"' if rec.offset == produced else ""
        rows.append([
            f"<span{mark}>{h(rec.offset)}</span>", h(when),
            f'<pre class="key" data-format="{h(key_fmt)}">{h(key_text)}</pre>',
            f'<pre class="value" data-format="{h(value_fmt)}">{h(value_text)}</pre>',
            f'<pre class="headers">{h(header_text)}</pre>',
        ])
    nav = []
    if offset > start:
        nav.append(link("« older", url("topics", name, "messages", partition=index, offset=max(start, offset - limit),
                                       limit=limit, format=fmt)))
    nav.append(f"offsets {offset}–{page.next_offset - 1 if page.next_offset > offset else offset} of "
               f"[{start}, {hw}) · read {size(page.bytes_read)}")
    if page.next_offset < hw:
        nav.append(link("newer »" if not query else "search on »",
                        url("topics", name, "messages", partition=index, offset=page.next_offset, limit=limit,
                            format=fmt, q=query)))
    note = ""
    if query:
        note = (f'<p class="muted">{len(page.records)} match(es) for “{h(query)}” in offsets {offset}–'
                f'{page.next_offset - 1}{" (scan bound reached: search on from there)" if page.truncated else ""}</p>')
    if produced is not None:
        note += f'<p class="ok">Produced at offset {h(produced)}.</p>'
    body = (controls + note + f'<p class="pager">{" · ".join(nav)}</p>'
            + table(["offset", "timestamp (UTC)", "key", "value", "headers"], rows, "messages"))
    return ctx.render(f"{name} / {index}", body, active="topics")


def _when(timestamp_ms: int) -> str:
    """A record's timestamp as ISO UTC; none (-1) or out of range as the number."""
    if timestamp_ms < 0:
        return "none"
    try:
        moment = datetime.datetime.fromtimestamp(timestamp_ms / 1000, datetime.UTC)
    except (OverflowError, ValueError, OSError):
        return str(timestamp_ms)
    return moment.isoformat(timespec="milliseconds")


class RemoteSource:
    """A partition without a replica here, read from its leader with Fetch (the
    inter-broker connection, as the console's principal: READ is checked there)."""

    def __init__(self, ctx: Ctx, topic: str, index: int, leader: int) -> None:
        self.ctx, self.topic, self.index, self.leader = ctx, topic, index, leader
        self.log_start_offset = 0
        self.high_watermark = 0

    async def open(self) -> str | None:
        """Learn the offsets (ListOffsets earliest and latest); an error's name, or None."""
        for stamp in (-2, -1):
            body = request(LIST_OFFSETS, replica_id=-1, isolation_level=0, topics=[part(
                LIST_OFFSETS, "topics", name=self.topic, partitions=[
                    part(LIST_OFFSETS, "topics", "partitions", partition_index=self.index, timestamp=stamp)])])
            try:
                answer = (await call(self.ctx.broker, self.ctx.connection, LIST_OFFSETS, 7, body, self.leader)
                          ).topics[0].partitions[0]
            except (OSError, TimeoutError) as exc:
                return str(exc) or type(exc).__name__
            if answer.error_code:
                return error_name(answer.error_code)
            if stamp == -2:
                self.log_start_offset = answer.offset
            else:
                self.high_watermark = answer.offset
        return None

    async def read(self, offset: int, max_bytes: int, min_one: bool) -> bytes | None:
        body = request(FETCH, replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=max_bytes, isolation_level=0,
                       session_id=0, session_epoch=-1, topics=[part(FETCH, "topics", topic=self.topic, partitions=[
                           part(FETCH, "topics", "partitions", partition=self.index, fetch_offset=offset,
                                log_start_offset=-1, partition_max_bytes=max_bytes)])],
                       forgotten_topics_data=[], rack_id="")
        try:
            answer = await call(self.ctx.broker, self.ctx.connection, FETCH, 11, body, self.leader)
        except (OSError, TimeoutError):
            return None
        data = answer.responses[0].partitions[0]
        if data.error_code or data.records is None:
            return None
        records = bytes(data.records)
        if not min_one and len(records) > max_bytes:
            return None  # a fetch always returns its first batch whole: not past the bound
        return records


async def _offset_for_time(ctx: Ctx, source: Any, partition: Any, topic: str, index: int, timestamp: int) -> int:
    """ListOffsets' rule: the first offset with a timestamp at or after ``timestamp``,
    else the high watermark."""
    if isinstance(source, LocalSource):
        found = partition.log.offset_for_timestamp(timestamp)
        return found[0] if found is not None else source.high_watermark
    body = request(LIST_OFFSETS, replica_id=-1, isolation_level=0, topics=[part(
        LIST_OFFSETS, "topics", name=topic, partitions=[
            part(LIST_OFFSETS, "topics", "partitions", partition_index=index, timestamp=timestamp)])])
    answer = (await call(ctx.broker, ctx.connection, LIST_OFFSETS, 7, body, source.leader)).topics[0].partitions[0]
    return answer.offset if not answer.error_code and answer.offset >= 0 else source.high_watermark


def _browse_form(ctx: Ctx, record: Any, index: int, limit: int, fmt: str, query: str, when: str) -> str:
    partitions = "".join(f'<option value="{i}"{" selected" if i == index else ""}>{i}</option>'
                         for i in sorted(record.partitions))
    formats = "".join(f'<option{" selected" if f == fmt else ""}>{f}</option>' for f in FORMATS)
    offset = ctx.request.query.get("offset", "")
    return (f'<p>{link("« topic " + record.name, url("topics", record.name))}</p>'
            f'<form method="get" action="{h(url("topics", record.name, "messages"))}" id="browse">'
            f'<label>Partition <select name="partition">{partitions}</select></label> '
            f'<label>Offset <input name="offset" size="10" value="{h(offset)}"></label> '
            f'<label>or time <input name="time" size="22" value="{h(when)}" placeholder="2026-12-02T04:00 or ms"></label> '
            f'<label>Records <input name="limit" size="4" value="{h(limit)}"></label> '
            f'<label>Show as <select name="format">{formats}</select></label> '
            f'<label>Search <input name="q" size="16" value="{h(query)}"></label> '
            '<button type="submit">Go</button></form>')


ROUTES = [
    ("GET", "/topics", topics, False),
    ("POST", "/topics", create_topic, False),
    ("GET", "/topics/{topic}", topic, False),
    ("GET", "/topics/{topic}/messages", messages, False),
    ("POST", "/topics/{topic}/produce", produce, False),
]
