"""Consumer groups: the list, one group's members, assignments, offsets and lag, and
resetting an empty group's offsets (preview, then confirm), all through the group
handlers at the group's coordinator."""

from __future__ import annotations

import struct
from typing import Any

from aiohttp import web

from moldau.protocol.errors import ErrorCode
from moldau.security.acl import AclOperation, ResourceType

from . import Ctx
from .calls import call, part, request
from .html import h, hidden, link, table, url
from .pages_cluster import error_name
from .pages_topics import PAGE_SIZE, _parse_time

LIST_OFFSETS, OFFSET_COMMIT, OFFSET_FETCH, FIND_COORDINATOR, DESCRIBE_GROUPS, LIST_GROUPS = 2, 8, 9, 10, 15, 16
#: Kafka resets offsets only of groups without members (kafka-consumer-groups --reset-offsets)
RESETTABLE = ("Empty", "Dead")
STRATEGIES = ("earliest", "latest", "offset", "time")


async def _all_groups(ctx: Ctx) -> list[tuple[str, str, str, int]]:
    """(group id, state, type, coordinator) of every group, asking each live broker."""
    found: list[tuple[str, str, str, int]] = []
    for info in ctx.broker.live_brokers():
        try:
            answer = await call(ctx.broker, ctx.connection, LIST_GROUPS, 5, request(LIST_GROUPS), info.broker_id)
        except (OSError, TimeoutError):
            continue
        found.extend((g.group_id, g.group_state, g.group_type, info.broker_id) for g in answer.groups)
    return sorted(found)


async def groups(ctx: Ctx) -> web.StreamResponse:
    query = ctx.request.query.get("q", "")
    listed = [g for g in await _all_groups(ctx) if query in g[0]]
    try:
        page_no = max(1, int(ctx.request.query.get("page", "1")))
    except ValueError:
        raise web.HTTPBadRequest(text="page must be an integer") from None
    pages = max(1, -(-len(listed) // PAGE_SIZE))
    page_no = min(page_no, pages)
    rows = [[link(g, url("groups", g)), h(state), h(kind), h(node)]
            for g, state, kind, node in listed[(page_no - 1) * PAGE_SIZE: page_no * PAGE_SIZE]]
    nav = [f"page {page_no} of {pages} ({len(listed)} groups)"]
    if page_no > 1:
        nav.insert(0, link("« previous", url("groups", q=query, page=page_no - 1)))
    if page_no < pages:
        nav.append(link("next »", url("groups", q=query, page=page_no + 1)))
    body = (f'<form method="get" action="{h(url("groups"))}"><input name="q" value="{h(query)}" '
            'placeholder="id contains"> <button type="submit">Filter</button></form>'
            f'<p class="pager">{" · ".join(nav)}</p>'
            + table(["group", "state", "type", "coordinator"], rows, "groups"))
    return ctx.render("Consumer groups", body, active="groups")


async def _coordinator(ctx: Ctx, group: str) -> int:
    answer = await call(ctx.broker, ctx.connection, FIND_COORDINATOR, 4,
                        request(FIND_COORDINATOR, key_type=0, coordinator_keys=[group]))
    found = answer.coordinators[0]
    if found.error_code:
        raise web.HTTPServiceUnavailable(text=f"no coordinator for the group: {error_name(found.error_code)}")
    return int(found.node_id)


def decode_assignment(data: bytes | None) -> list[tuple[str, list[int]]]:
    """The consumer protocol's Assignment (version, [topic, [partition]]), or []."""
    if not data or len(data) < 6:
        return []
    try:
        pos = 2
        (count,) = struct.unpack_from(">i", data, pos)
        pos += 4
        result = []
        for _ in range(max(0, min(count, 10_000))):
            (length,) = struct.unpack_from(">h", data, pos)
            pos += 2
            topic = bytes(data[pos:pos + length]).decode("utf-8", "replace")
            pos += length
            (n,) = struct.unpack_from(">i", data, pos)
            pos += 4
            partitions = list(struct.unpack_from(f">{max(0, min(n, 100_000))}i", data, pos))
            pos += 4 * len(partitions)
            result.append((topic, partitions))
        return result
    except (struct.error, ValueError):
        return []


async def _describe(ctx: Ctx, group: str, node: int) -> tuple[Any, dict[tuple[str, int], int]]:
    described = (await call(ctx.broker, ctx.connection, DESCRIBE_GROUPS, 5,
                            request(DESCRIBE_GROUPS, groups=[group]), node)).groups[0]
    fetched = await call(ctx.broker, ctx.connection, OFFSET_FETCH, 7,
                         request(OFFSET_FETCH, group_id=group, topics=None), node)
    offsets = {}
    for t in fetched.topics:
        for p in t.partitions:
            if not p.error_code and p.committed_offset >= 0:
                offsets[(t.name, p.partition_index)] = p.committed_offset
    return described, offsets


async def group(ctx: Ctx) -> web.StreamResponse:
    group_id = ctx.request.match_info["group"]
    node = await _coordinator(ctx, group_id)
    described, offsets = await _describe(ctx, group_id, node)
    if described.error_code:
        if described.error_code == ErrorCode.GROUP_AUTHORIZATION_FAILED:
            raise web.HTTPNotFound(text="no such group (or not authorized)")
        body = f'<p class="msg">{h(error_name(described.error_code))}</p>'
        return ctx.render(f"Group {group_id}", body, active="groups")
    assigned: dict[tuple[str, int], str] = {}
    members = []
    for m in described.members:
        parts = decode_assignment(m.member_assignment)
        for topic_name, indexes in parts:
            for i in indexes:
                assigned[(topic_name, i)] = m.member_id
        members.append([h(m.member_id), h(m.group_instance_id or ""), h(m.client_id), h(m.client_host),
                        h("; ".join(f"{t}: {', '.join(map(str, ps))}" for t, ps in parts))])
    rows = []
    keys = sorted(set(offsets) | set(assigned))
    ends = await _high_watermarks(ctx, keys)
    for key in keys:
        topic_name, index = key
        end = ends.get(key)
        committed = offsets.get(key)
        lag = "" if end is None or committed is None else str(max(0, end - committed))
        rows.append([link(topic_name, url("topics", topic_name)), h(index), h("" if committed is None else committed),
                     h("?" if end is None else end), f'<span class="lag">{h(lag)}</span>', h(assigned.get(key, ""))])
    facts = table(["", ""], [["state", f'<span id="group-state">{h(described.group_state)}</span>'],
                             ["protocol", h(f"{described.protocol_type} {described.protocol_data}")],
                             ["coordinator", h(node)]], "kv")
    body = (facts + "<h2>Members</h2>" + table(["member", "instance", "client", "host", "assignment"], members)
            + "<h2>Offsets and lag</h2>" + table(["topic", "partition", "committed", "high watermark", "lag", "member"],
                                                 rows, "offsets")
            + "<h2>Reset offsets</h2>" + _reset_form(ctx, group_id, described.group_state, sorted({t for t, _ in offsets})))
    return ctx.render(f"Group {group_id}", body, active="groups")


async def _high_watermarks(ctx: Ctx, keys: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """The high watermark of each partition: this broker's replica's when it has one,
    else the leader's answer to one ListOffsets (latest) per leader."""
    found: dict[tuple[str, int], int] = {}
    elsewhere: dict[int, list[tuple[str, int]]] = {}
    for key in keys:
        partition = ctx.broker.partitions.get(key)
        if partition is not None and not partition.log.closed:
            found[key] = partition.high_watermark
            continue
        record = ctx.broker.topics.get(key[0])
        state = None if record is None else record.partitions.get(key[1])
        if state is not None and state.leader >= 0:
            elsewhere.setdefault(state.leader, []).append(key)
    for leader, wanted in elsewhere.items():
        by_topic: dict[str, list[int]] = {}
        for topic_name, index in wanted:
            by_topic.setdefault(topic_name, []).append(index)
        body = request(LIST_OFFSETS, replica_id=-1, isolation_level=0, topics=[
            part(LIST_OFFSETS, "topics", name=t, partitions=[
                part(LIST_OFFSETS, "topics", "partitions", partition_index=i, timestamp=-1) for i in indexes])
            for t, indexes in by_topic.items()])
        try:
            answer = await call(ctx.broker, ctx.connection, LIST_OFFSETS, 7, body, leader)
        except (OSError, TimeoutError):
            continue  # shown as unknown
        for t in answer.topics:
            for p in t.partitions:
                if not p.error_code:
                    found[(t.name, p.partition_index)] = p.offset
    return found


def _reset_form(ctx: Ctx, group_id: str, state: str, topics: list[str]) -> str:
    if state not in RESETTABLE:
        return (f'<p class="muted">Offsets can be reset only while the group is empty (it is {h(state)}): '
                "stop its consumers first, as with kafka-consumer-groups.</p>")
    names = topics or sorted(t for t in ctx.broker.topics
                             if ctx.access.allowed(ctx.connection, AclOperation.DESCRIBE, ResourceType.TOPIC, t))
    options = "".join(f"<option>{h(t)}</option>" for t in names[:1000])
    strategies = "".join(f"<option>{s}</option>" for s in STRATEGIES)
    return (f'<form method="post" action="{h(url("groups", group_id, "reset"))}">{hidden("csrf", ctx.session.csrf)}'
            f'{hidden("step", "preview")}<label>Topic <select name="topic">{options}</select></label> '
            f'<label>to <select name="strategy">{strategies}</select></label> '
            '<label>value <input name="value" size="22" placeholder="offset, or time for time"></label> '
            '<button type="submit" id="reset-preview">Preview</button></form>')


async def _targets(ctx: Ctx, topic_name: str, strategy: str, value: str) -> list[tuple[int, int, str]]:
    """(partition, new offset, error) for every partition of the topic, asked of each leader."""
    record = ctx.broker.topics.get(topic_name)
    if record is None:
        raise web.HTTPBadRequest(text="no such topic")
    if strategy == "time":
        stamp = _parse_time(value)
        if stamp is None:
            raise web.HTTPBadRequest(text="give a time")
        wanted = {i: stamp for i in record.partitions}
    elif strategy == "offset":
        try:
            target = int(value)
        except ValueError:
            raise web.HTTPBadRequest(text="give an offset") from None
        wanted = {i: -2 for i in record.partitions}
    else:
        wanted = {i: -2 if strategy == "earliest" else -1 for i in record.partitions}
    result = []
    for index, stamp in sorted(wanted.items()):
        leader = record.partitions[index].leader
        body = request(LIST_OFFSETS, replica_id=-1, isolation_level=0, topics=[part(
            LIST_OFFSETS, "topics", name=topic_name, partitions=[
                part(LIST_OFFSETS, "topics", "partitions", partition_index=index, timestamp=stamp)])])
        try:
            answer = (await call(ctx.broker, ctx.connection, LIST_OFFSETS, 7, body, leader)).topics[0].partitions[0]
        except (OSError, TimeoutError) as exc:
            result.append((index, -1, str(exc)))
            continue
        if answer.error_code:
            result.append((index, -1, error_name(answer.error_code)))
            continue
        offset = answer.offset
        if strategy == "offset":
            latest = (await call(ctx.broker, ctx.connection, LIST_OFFSETS, 7, _latest(topic_name, index), leader)
                      ).topics[0].partitions[0].offset
            offset = min(max(target, answer.offset), latest)  # as Kafka: clamped to the log's range
        elif strategy == "time" and offset < 0:
            offset = (await call(ctx.broker, ctx.connection, LIST_OFFSETS, 7, _latest(topic_name, index), leader)
                      ).topics[0].partitions[0].offset
        result.append((index, offset, ""))
    return result


def _latest(topic_name: str, index: int) -> Any:
    return request(LIST_OFFSETS, replica_id=-1, isolation_level=0, topics=[part(
        LIST_OFFSETS, "topics", name=topic_name, partitions=[
            part(LIST_OFFSETS, "topics", "partitions", partition_index=index, timestamp=-1)])])


async def reset(ctx: Ctx) -> web.StreamResponse:
    group_id = ctx.request.match_info["group"]
    form = await ctx.request.post()
    topic_name, strategy = str(form.get("topic", "")), str(form.get("strategy", ""))
    value, step = str(form.get("value", "")), str(form.get("step", "preview"))
    if strategy not in STRATEGIES:
        raise web.HTTPBadRequest(text="unknown strategy")
    node = await _coordinator(ctx, group_id)
    described, offsets = await _describe(ctx, group_id, node)
    back = link("« group " + group_id, url("groups", group_id))
    if described.error_code or described.group_state not in RESETTABLE:
        state = error_name(described.error_code) if described.error_code else described.group_state
        body = f'<p class="msg">Not reset: the group must be empty (it is {h(state)}).</p>{back}'
        return ctx.render(f"Group {group_id}: reset", body, active="groups", status=409)
    targets = await _targets(ctx, topic_name, strategy, value)
    rows = [[h(topic_name), h(i), h(offsets.get((topic_name, i), "")), h(o if o >= 0 else ""), h(err)]
            for i, o, err in targets]
    if step != "confirm":
        fields = "".join(hidden(k, v) for k, v in (("csrf", ctx.session.csrf), ("topic", topic_name),
                                                     ("strategy", strategy), ("value", value), ("step", "confirm")))
        body = (f"<p>{back}</p><p>Reset group <strong>{h(group_id)}</strong> on {h(topic_name)} to {h(strategy)} "
                f"{h(value)}:</p>" + table(["topic", "partition", "committed now", "new offset", "error"], rows)
                + f'<form method="post" action="{h(url("groups", group_id, "reset"))}" '
                f'data-confirm="Reset the offsets of {h(group_id)}?">{fields}'
                '<button type="submit" id="reset-confirm">Confirm reset</button></form>')
        return ctx.render(f"Group {group_id}: reset", body, active="groups")
    commits = [part(OFFSET_COMMIT, "topics", "partitions", partition_index=i, committed_offset=o,
                    committed_metadata="") for i, o, err in targets if o >= 0 and not err]
    body = request(OFFSET_COMMIT, group_id=group_id, generation_id_or_member_epoch=-1, member_id="",
                   group_instance_id=None, topics=[part(OFFSET_COMMIT, "topics", name=topic_name, partitions=commits)])
    answer = await call(ctx.broker, ctx.connection, OFFSET_COMMIT, 8, body, node)
    errors = [(p.partition_index, p.error_code) for t in answer.topics for p in t.partitions if p.error_code]
    if errors:
        text = ", ".join(f"{i}: {error_name(c)}" for i, c in errors)
        return ctx.render(f"Group {group_id}: reset", f'<p class="msg">Not reset: {h(text)}</p>{back}',
                          active="groups", status=409)
    body_html = (f'<p class="ok">Offsets of {h(group_id)} on {h(topic_name)} reset.</p>'
                 + table(["topic", "partition", "before", "now", "error"], rows) + back)
    return ctx.render(f"Group {group_id}: reset", body_html, active="groups")


ROUTES = [
    ("GET", "/groups", groups, False),
    ("GET", "/groups/{group}", group, False),
    ("POST", "/groups/{group}/reset", reset, False),
]
