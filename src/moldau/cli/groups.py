"""``moldau group list|describe|seek|delete``: consumer groups, as kafka-consumer-groups.

``describe`` shows the members and their assignments, and per partition the committed
offset, the log end offset and the lag. ``seek`` is kafka-consumer-groups
``--reset-offsets``: it computes new offsets (``--to-earliest``, ``--to-latest``,
``--to-offset N``, ``--to-datetime TIME``, ``--shift-by N``; clamped to what the log
holds, as Kafka does) for ``--topic T[:P,P...]`` or ``--all-topics``, prints the plan,
and commits it only with ``--execute``. Like Kafka's tool it refuses to commit while the
group has members: their own commits would overwrite the reset at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from moldau.cli.client import (
    CliError,
    Conn,
    admin,
    connection_options,
    emit_json,
    emit_rows,
    format_option,
    kafka,
    pairs,
    result,
    settle,
    split_list,
    table,
)


@click.group()
def group() -> None:
    """List, describe, reset (seek) and delete consumer groups (any Kafka cluster)."""


def _state(value: Any) -> str:
    return value.name if hasattr(value, "name") else str(value)


@group.command("list")
@connection_options
@format_option
def list_(conn: Conn, fmt: str) -> None:
    """Groups with their states and types."""
    client = admin(conn)
    listed = result(client.list_consumer_groups(request_timeout=conn.timeout), conn, "list groups")
    rows = sorted(({"group": g.group_id, "state": _state(g.state),
                    "type": _state(getattr(g, "type", None)) if getattr(g, "type", None) is not None else None,
                    "simple": g.is_simple_consumer_group}
                   for g in listed.valid), key=lambda r: r["group"])
    emit_rows(rows, fmt, ("group", "state", "type"))


def _describe_group(client: Any, conn: Conn, name: str) -> Any:
    return result(client.describe_consumer_groups([name], request_timeout=conn.timeout)[name],
                  conn, f"group {name!r}")


def _committed(client: Any, conn: Conn, name: str) -> dict[tuple[str, int], int]:
    ck = kafka()
    request = [ck.ConsumerGroupTopicPartitions(name)]
    got = result(client.list_consumer_group_offsets(request, request_timeout=conn.timeout)[name],
                 conn, f"offsets of group {name!r}")
    return {(tp.topic, tp.partition): tp.offset for tp in got.topic_partitions or [] if tp.offset >= 0}


def _log_offsets(client: Any, conn: Conn, tps: list[tuple[str, int]], spec: Any) -> dict[tuple[str, int], int]:
    ck = kafka()
    if not tps:
        return {}
    futures = client.list_offsets({ck.TopicPartition(t, p): spec for t, p in tps}, request_timeout=conn.timeout)
    return {(tp.topic, tp.partition): result(f, conn, f"offsets of {tp.topic}[{tp.partition}]").offset
            for tp, f in futures.items()}


def _exists(desc: Any, committed: dict[tuple[str, int], int]) -> bool:
    return bool(desc.members or committed) or _state(desc.state) not in ("DEAD", "UNKNOWN")


@group.command("describe")
@click.argument("names", nargs=-1, required=True)
@connection_options
@format_option
def describe(names: tuple[str, ...], conn: Conn, fmt: str) -> None:
    """Members, assignments, committed offsets and lag per partition."""
    ck = kafka()
    client = admin(conn)
    out = []
    for name in names:
        desc = _describe_group(client, conn, name)
        committed = _committed(client, conn, name)
        if not _exists(desc, committed):
            raise CliError(f"group {name!r} does not exist (GROUP_ID_NOT_FOUND)")
        owner: dict[tuple[str, int], str] = {}
        members = []
        for m in desc.members:
            tps = sorted((tp.topic, tp.partition) for tp in (m.assignment.topic_partitions if m.assignment else []))
            for tp in tps:
                owner[tp] = m.member_id
            members.append({"member_id": m.member_id, "client_id": m.client_id, "host": m.host,
                            "group_instance_id": m.group_instance_id,
                            "assignment": [{"topic": t, "partition": p} for t, p in tps]})
        keys = sorted(set(committed) | set(owner))
        ends = _log_offsets(client, conn, keys, ck.admin.OffsetSpec.latest())
        offsets = []
        for t, p in keys:
            cur, end = committed.get((t, p)), ends.get((t, p))
            offsets.append({"topic": t, "partition": p, "committed_offset": cur, "log_end_offset": end,
                            "lag": end - cur if cur is not None and end is not None else None,
                            "member_id": owner.get((t, p))})
        coordinator = desc.coordinator
        out.append({"group": name, "state": _state(desc.state),
                    "type": _state(desc.type) if getattr(desc, "type", None) is not None else None,
                    "coordinator": coordinator.id if coordinator is not None else None,
                    "assignor": desc.partition_assignor or None, "members": members, "offsets": offsets})
    if fmt == "json":
        emit_json(out if len(out) > 1 else out[0])
        return
    for i, g in enumerate(out):
        if i:
            click.echo()
        pairs([("GROUP", g["group"]), ("STATE", g["state"]), ("TYPE", g["type"]),
               ("COORDINATOR", g["coordinator"]), ("ASSIGNOR", g["assignor"]), ("MEMBERS", len(g["members"]))])
        if g["members"]:
            click.echo()
            table(["MEMBER-ID", "CLIENT-ID", "HOST", "ASSIGNMENT"],
                  [(m["member_id"], m["client_id"], m["host"],
                    [f"{a['topic']}[{a['partition']}]" for a in m["assignment"]]) for m in g["members"]])
        click.echo()
        table(["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "MEMBER-ID"],
              [(o["topic"], o["partition"], o["committed_offset"], o["log_end_offset"], o["lag"], o["member_id"])
               for o in g["offsets"]])


def parse_time(text: str) -> int:
    """Epoch milliseconds or ISO 8601 (a time without a zone is local time) -> ms."""
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"not a time: {text!r} (epoch ms or ISO 8601)",
                                 param_hint="--to-datetime") from None
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()
    return int(parsed.timestamp() * 1000)


def plan_offset(kind: str, n: int, current: int | None, low: int, high: int, at_time: int | None) -> int:
    """The new offset of one partition, clamped to [low, high] as Kafka's tool clamps it."""
    if kind == "earliest":
        return low
    if kind == "latest":
        return high
    if kind == "offset":
        target = n
    elif kind == "shift":
        target = (current if current is not None else low) + n
    else:  # datetime: the first offset at or after the time; none -> the end
        target = at_time if at_time is not None and at_time >= 0 else high
    return max(low, min(high, target))


@group.command("seek")
@click.argument("name")
@click.option("--topic", "topics", multiple=True, metavar="TOPIC[:P,P...]",
              help="A topic (all its partitions, or those listed); repeatable.")
@click.option("--all-topics", is_flag=True, help="Every topic the group has committed offsets for.")
@click.option("--to-earliest", is_flag=True)
@click.option("--to-latest", is_flag=True)
@click.option("--to-offset", type=int, default=None, metavar="N")
@click.option("--to-datetime", default=None, metavar="TIME", help="Epoch ms or ISO 8601.")
@click.option("--shift-by", type=int, default=None, metavar="N", help="Move by N (negative: back).")
@click.option("--execute", is_flag=True, help="Commit the plan (without it: a dry run that only shows it).")
@connection_options
@format_option
def seek(name: str, topics: tuple[str, ...], all_topics: bool, to_earliest: bool, to_latest: bool,
         to_offset: int | None, to_datetime: str | None, shift_by: int | None, execute: bool,
         conn: Conn, fmt: str) -> None:
    """Reset a group's offsets (a dry run unless --execute), as kafka-consumer-groups --reset-offsets."""
    chosen = [k for k, on in (("earliest", to_earliest), ("latest", to_latest), ("offset", to_offset is not None),
                              ("datetime", to_datetime is not None), ("shift", shift_by is not None)) if on]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --to-earliest, --to-latest, --to-offset, "
                               "--to-datetime, --shift-by")
    if bool(topics) == all_topics:
        raise click.UsageError("give --topic TOPIC[:P,...] (repeatable) or --all-topics")
    kind = chosen[0]
    n = to_offset if kind == "offset" else shift_by if kind == "shift" else 0
    when = parse_time(to_datetime) if to_datetime is not None else None
    ck = kafka()
    client = admin(conn)
    desc = _describe_group(client, conn, name)
    committed = _committed(client, conn, name)
    state = _state(desc.state)
    if execute and desc.members:
        raise CliError(f"cannot reset the offsets of group {name!r} while it has {len(desc.members)} active "
                       f"member(s) in state {state}: stop its consumers first (NON_EMPTY_GROUP)")
    keys: list[tuple[str, int]] = []
    if all_topics:
        keys = sorted(committed)
    else:
        md = client.list_topics(timeout=conn.timeout)
        for item in topics:
            t, _, plist = item.partition(":")
            tmd = md.topics.get(t)
            if tmd is None or tmd.error is not None:
                raise CliError(f"topic {t!r} does not exist (UNKNOWN_TOPIC_OR_PART)")
            wanted = [int(p) for p in split_list([plist])] if plist else sorted(tmd.partitions)
            for p in wanted:
                if p not in tmd.partitions:
                    raise CliError(f"topic {t!r} has no partition {p} (UNKNOWN_TOPIC_OR_PART)")
                keys.append((t, p))
    if not keys:
        raise CliError(f"group {name!r} has no committed offsets to reset; name the topics with --topic")
    lows = _log_offsets(client, conn, keys, ck.admin.OffsetSpec.earliest())
    highs = _log_offsets(client, conn, keys, ck.admin.OffsetSpec.latest())
    at = _log_offsets(client, conn, keys, ck.admin.OffsetSpec.for_timestamp(when)) if when is not None else {}
    plan = [{"topic": t, "partition": p, "current_offset": committed.get((t, p)),
             "new_offset": plan_offset(kind, n or 0, committed.get((t, p)), lows[(t, p)], highs[(t, p)],
                                       at.get((t, p)))}
            for t, p in keys]
    if execute:
        request = [ck.ConsumerGroupTopicPartitions(
            name, [ck.TopicPartition(r["topic"], r["partition"], r["new_offset"]) for r in plan])]
        done = result(client.alter_consumer_group_offsets(request, request_timeout=conn.timeout)[name],
                      conn, f"offsets of group {name!r} were not reset")
        for tp in done.topic_partitions or []:
            if tp.error is not None:
                raise CliError(f"offsets of group {name!r} were not reset: {tp.topic}[{tp.partition}]: "
                               f"{tp.error.str()} ({tp.error.name()})")
    elif desc.members:
        click.echo(f"note: group {name!r} has {len(desc.members)} active member(s) (state {state}); "
                   "--execute will refuse until they leave", err=True)
    if fmt == "json":
        emit_json({"group": name, "executed": execute, "plan": plan})
    else:
        table(["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"],
              [(name, r["topic"], r["partition"], r["current_offset"], r["new_offset"]) for r in plan])
        if not execute:
            click.echo("dry run: nothing committed; add --execute to apply", err=True)


@group.command("delete")
@click.argument("names", nargs=-1, required=True)
@connection_options
@format_option
def delete(names: tuple[str, ...], conn: Conn, fmt: str) -> None:
    """Delete empty groups and their committed offsets."""
    client = admin(conn)
    futures = client.delete_consumer_groups(list(names), request_timeout=conn.timeout)
    emit_rows(settle(futures, names, conn, "group", "deleted"), fmt, ("group", "status"))
