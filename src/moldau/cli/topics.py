"""``moldau topic create|list|describe|alter-config|add-partitions|delete``.

Flags as rpk spells them (``topic create NAME -p PARTITIONS -r REPLICAS -c KEY=VALUE``).
``describe`` shows each partition's leader, replicas, ISR, its earliest and latest
offsets and the number of records between them (confluent-kafka's AdminClient offers no
DescribeLogDirs, so sizes are counted in records, not bytes), and the topic's configs
with their sources (only those not at their defaults unless ``--all-configs``).
"""

from __future__ import annotations

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
    key_values,
    pairs,
    result,
    settle,
    table,
)


@click.group()
def topic() -> None:
    """Create, list, describe, configure and delete topics (any Kafka cluster)."""


@topic.command("create")
@click.argument("names", nargs=-1, required=True)
@click.option("-p", "--partitions", type=click.IntRange(min=1), default=None,
              help="Partitions (default: the broker's num.partitions).")
@click.option("-r", "--replicas", type=click.IntRange(min=1), default=None,
              help="Replication factor (default: the broker's default.replication.factor).")
@click.option("-c", "--config", "configs", multiple=True, metavar="KEY=VALUE",
              help="A topic config; repeatable.")
@click.option("--dry-run", is_flag=True, help="Let the cluster validate, create nothing.")
@connection_options
@format_option
def create(names: tuple[str, ...], partitions: int | None, replicas: int | None,
           configs: tuple[str, ...], dry_run: bool, conn: Conn, fmt: str) -> None:
    """Create topics."""
    ck = kafka()
    settings = key_values(configs, "-c")
    client = admin(conn)
    new = [ck.admin.NewTopic(name, num_partitions=partitions or -1, replication_factor=replicas or -1,
                             config=settings) for name in names]
    futures = client.create_topics(new, operation_timeout=conn.timeout, request_timeout=conn.timeout,
                                   validate_only=dry_run)
    rows = settle(futures, names, conn, "topic", "created", "validated" if dry_run else "created")
    emit_rows(rows, fmt, ("topic", "status"))


@topic.command("list")
@click.option("-i", "--internal", is_flag=True, help="Also internal topics (__consumer_offsets, ...).")
@connection_options
@format_option
def list_(internal: bool, conn: Conn, fmt: str) -> None:
    """List topics with their partition counts and replication factors."""
    client = admin(conn)
    md = client.list_topics(timeout=conn.timeout)
    rows = []
    for name in sorted(md.topics):
        t = md.topics[name]
        if name.startswith("__") and not internal:
            continue
        parts = t.partitions.values()
        rf = max((len(p.replicas) for p in parts), default=0)
        rows.append({"topic": name, "partitions": len(t.partitions), "replicas": rf})
    emit_rows(rows, fmt, ("topic", "partitions", "replicas"))


def _describe(client: Any, conn: Conn, name: str, all_configs: bool) -> dict[str, Any]:
    ck = kafka()
    desc = result(client.describe_topics(ck.TopicCollection([name]), request_timeout=conn.timeout)[name],
                  conn, f"topic {name!r}")
    tps = [ck.TopicPartition(name, p.id) for p in desc.partitions]
    low = _offsets(client, conn, tps, ck.admin.OffsetSpec.earliest())
    high = _offsets(client, conn, tps, ck.admin.OffsetSpec.latest())
    resource = ck.admin.ConfigResource(ck.admin.ResourceType.TOPIC, name)
    entries = result(client.describe_configs([resource], request_timeout=conn.timeout)[resource],
                     conn, f"configs of topic {name!r}")
    configs = []
    for key in sorted(entries):
        e = entries[key]
        try:
            source = ck.admin.ConfigSource(e.source).name
        except ValueError:
            source = str(e.source)
        if not all_configs and source == "DEFAULT_CONFIG":
            continue
        configs.append({"name": key, "value": None if e.is_sensitive else e.value, "source": source})
    partitions = []
    for p in sorted(desc.partitions, key=lambda p: p.id):
        lo, hi = low.get(p.id), high.get(p.id)
        partitions.append({
            "partition": p.id,
            "leader": p.leader.id if p.leader is not None else None,
            "replicas": [r.id for r in p.replicas],
            "isr": [r.id for r in p.isr],
            "log_start_offset": lo,
            "high_watermark": hi,
            "records": hi - lo if lo is not None and hi is not None else None,
        })
    return {"topic": name, "topic_id": str(desc.topic_id) if desc.topic_id else None,
            "internal": desc.is_internal, "partitions": partitions, "configs": configs}


def _offsets(client: Any, conn: Conn, tps: list[Any], spec: Any) -> dict[int, int]:
    if not tps:
        return {}
    futures = client.list_offsets({tp: spec for tp in tps}, request_timeout=conn.timeout)
    found = {}
    for tp, f in futures.items():
        try:  # a partition without a leader has no offsets to tell: "-", not a failed describe
            found[tp.partition] = result(f, conn, f"offsets of {tp.topic}[{tp.partition}]").offset
        except CliError:
            continue
    return found


@topic.command("describe")
@click.argument("names", nargs=-1, required=True)
@click.option("-a", "--all-configs", is_flag=True, help="Also the configs at their defaults.")
@connection_options
@format_option
def describe(names: tuple[str, ...], all_configs: bool, conn: Conn, fmt: str) -> None:
    """Partitions (leader, replicas, ISR, offsets, records) and configs with their sources."""
    client = admin(conn)
    described = [_describe(client, conn, name, all_configs) for name in names]
    if fmt == "json":
        emit_json(described if len(described) > 1 else described[0])
        return
    for i, d in enumerate(described):
        if i:
            click.echo()
        pairs([("TOPIC", d["topic"]), ("ID", d["topic_id"]), ("PARTITIONS", len(d["partitions"])),
               ("INTERNAL", str(d["internal"]).lower())])
        click.echo()
        table(["PARTITION", "LEADER", "REPLICAS", "ISR", "LOG-START", "HIGH-WATERMARK", "RECORDS"],
              [(p["partition"], p["leader"], p["replicas"], p["isr"], p["log_start_offset"],
                p["high_watermark"], p["records"]) for p in d["partitions"]])
        if d["configs"]:
            click.echo()
            table(["CONFIG", "VALUE", "SOURCE"], [(c["name"], c["value"], c["source"]) for c in d["configs"]])


@topic.command("alter-config")
@click.argument("name")
@click.option("-s", "--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set a config; repeatable.")
@click.option("-d", "--delete", "deletes", multiple=True, metavar="KEY",
              help="Back to the default; repeatable.")
@connection_options
@format_option
def alter_config(name: str, sets: tuple[str, ...], deletes: tuple[str, ...], conn: Conn, fmt: str) -> None:
    """Change a topic's configs (IncrementalAlterConfigs: others stay as they are)."""
    if not sets and not deletes:
        raise click.UsageError("nothing to change: give --set KEY=VALUE or --delete KEY")
    ck = kafka()
    a = ck.admin
    entries = [a.ConfigEntry(k, v, incremental_operation=a.AlterConfigOpType.SET)
               for k, v in key_values(sets, "--set").items()]
    entries += [a.ConfigEntry(k, None, incremental_operation=a.AlterConfigOpType.DELETE) for k in deletes]
    client = admin(conn)
    resource = a.ConfigResource(a.ResourceType.TOPIC, name, incremental_configs=entries)
    futures = client.incremental_alter_configs([resource], request_timeout=conn.timeout)
    for f in futures.values():
        result(f, conn, f"configs of topic {name!r} were not changed")
    rows = [{"config": e.name, "operation": "set" if e.value is not None else "delete", "value": e.value}
            for e in entries]
    if fmt == "json":
        emit_json({"topic": name, "changes": rows})
    else:
        table(["CONFIG", "OPERATION", "VALUE"], [(r["config"], r["operation"], r["value"]) for r in rows])


@topic.command("add-partitions")
@click.argument("name")
@click.option("-n", "--num", type=click.IntRange(min=1), default=None, help="How many partitions to add (rpk).")
@click.option("--to", "total", type=click.IntRange(min=1), default=None,
              help="The new total count (kafka-topics --partitions).")
@click.option("--dry-run", is_flag=True, help="Let the cluster validate, change nothing.")
@connection_options
@format_option
def add_partitions(name: str, num: int | None, total: int | None, dry_run: bool, conn: Conn, fmt: str) -> None:
    """Add partitions to a topic."""
    if (num is None) == (total is None):
        raise click.UsageError("give exactly one of --num ADD or --to TOTAL")
    ck = kafka()
    client = admin(conn)
    md = client.list_topics(topic=name, timeout=conn.timeout).topics.get(name)
    if md is None or md.error is not None:
        err = md.error if md is not None else None
        raise CliError(f"topic {name!r}: {err.str() if err else 'unknown'} "
                       f"({err.name() if err else 'UNKNOWN_TOPIC_OR_PART'})")
    before = len(md.partitions)
    after = total if total is not None else before + (num or 0)
    futures = client.create_partitions([ck.admin.NewPartitions(name, after)], validate_only=dry_run,
                                       operation_timeout=conn.timeout, request_timeout=conn.timeout)
    result(futures[name], conn, f"partitions of topic {name!r} were not added")
    row = {"topic": name, "partitions_before": before, "partitions": after, "dry_run": dry_run}
    if fmt == "json":
        emit_json(row)
    else:
        table(["TOPIC", "BEFORE", "AFTER"], [(name, before, after)])


@topic.command("delete")
@click.argument("names", nargs=-1, required=True)
@connection_options
@format_option
def delete(names: tuple[str, ...], conn: Conn, fmt: str) -> None:
    """Delete topics and their data."""
    client = admin(conn)
    futures = client.delete_topics(list(names), operation_timeout=conn.timeout, request_timeout=conn.timeout)
    emit_rows(settle(futures, names, conn, "topic", "deleted"), fmt, ("topic", "status"))
