"""``moldau produce TOPIC``: records from stdin or a file, one per line (as kcat -P).

A line is a value, or ``KEY<sep>VALUE`` with ``-k SEP``; with ``--format json`` each line
is a JSON object ``{"key", "value", "headers", "partition", "timestamp"}`` (all
optional; a value that is not a string is written as its JSON text). Headers from
``-H`` go on every record. ``--rate`` paces the sends (records per second). Every
record is waited for; the summary says which partitions and offsets they reached, and
the first delivery error fails the command with its Kafka name.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import IO, Any

import click

from moldau.cli.client import (
    CliError,
    Conn,
    ErrorWatch,
    connection_options,
    emit_json,
    error_sentence,
    kafka,
    key_values,
    metadata,
    table,
)

COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")


def parse_json_record(line: bytes, number: int) -> dict[str, Any]:
    """One ``--format json`` line -> producer arguments (key, value, headers, ...)."""
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise CliError(f"line {number} is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise CliError(f"line {number} is not a JSON object")
    out: dict[str, Any] = {}
    for name in ("key", "value"):
        v = obj.get(name)
        out[name] = None if v is None else (v if isinstance(v, str) else json.dumps(v)).encode()
    headers = obj.get("headers") or {}
    items = headers.items() if isinstance(headers, dict) else headers
    out["headers"] = [(str(k), None if v is None else str(v).encode()) for k, v in items]
    if obj.get("partition") is not None:
        out["partition"] = int(obj["partition"])
    if obj.get("timestamp") is not None:
        out["timestamp"] = int(obj["timestamp"])
    return out


@click.command()
@click.argument("topic")
@click.option("--file", "path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="Read records from this file (default: stdin).")
@click.option("-k", "--key-separator", default=None, metavar="SEP",
              help="Split each line into KEY SEP VALUE at the first SEP (kcat -K).")
@click.option("-H", "--header", "headers", multiple=True, metavar="KEY=VALUE",
              help="A header on every record; repeatable.")
@click.option("-p", "--partition", type=click.IntRange(min=0), default=None,
              help="Write to this partition (default: the key's, or spread).")
@click.option("-z", "--compression", type=click.Choice(COMPRESSIONS), default="none", show_default=True)
@click.option("--acks", type=click.Choice(["0", "1", "all", "-1"]), default="all", show_default=True)
@click.option("--rate", type=click.FloatRange(min=0.001), default=None, metavar="N",
              help="At most N records per second.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: lines (KEY SEP VALUE); json: one JSON record per line, JSON summary.")
@click.option("--progress/--no-progress", default=None,
              help="A progress bar on stderr (default: when reading a file on a terminal).")
@connection_options
def produce(topic: str, path: Path | None, key_separator: str | None, headers: tuple[str, ...],
            partition: int | None, compression: str, acks: str, rate: float | None, fmt: str,
            progress: bool | None, conn: Conn) -> None:
    """Write records to TOPIC, one per line of stdin or --file."""
    ck = kafka()
    key_values(headers, "-H")  # checks the KEY=VALUE form; a header key may repeat, so:
    common_headers = [(k.strip(), v.encode()) for k, _, v in (h.partition("=") for h in headers)]
    sep = key_separator.encode() if key_separator else None
    watch = ErrorWatch()
    producer = ck.Producer(conn.config(**{
        "acks": acks, "compression.type": compression, "linger.ms": 5, "error_cb": watch,
        "message.timeout.ms": int(conn.timeout * 1000) + 5000,
    }))
    md = metadata(producer, conn, watch, topic).topics.get(topic)
    if md is None or md.error is not None:
        err = md.error if md is not None else None
        name = err.name() if err is not None else "UNKNOWN_TOPIC_OR_PART"
        raise CliError(f"topic {topic!r}: {err.str() if err is not None else 'unknown'} ({name})")
    if partition is not None and partition not in md.partitions:
        raise CliError(f"topic {topic!r} has no partition {partition} (UNKNOWN_TOPIC_OR_PART)")

    stats: dict[int, list[int]] = {}  # partition -> [count, first offset, last offset]
    errors: list[str] = []

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            if not errors:
                errors.append(error_sentence(ck.KafkaException(err), f"a record to {topic!r} was not written"))
            return
        s = stats.setdefault(msg.partition(), [0, msg.offset(), msg.offset()])
        s[0] += 1
        s[1] = min(s[1], msg.offset())
        s[2] = max(s[2], msg.offset())

    source: IO[bytes] = open(path, "rb") if path is not None else sys.stdin.buffer  # noqa: SIM115
    total = path.stat().st_size if path is not None else 0
    # a bar needs a length: a file's size (stdin's is unknown, so never there)
    show = bool(total) and (progress if progress is not None else sys.stderr.isatty())
    sent = 0
    started = time.monotonic()
    bar = click.progressbar(length=total, label=f"producing to {topic}", file=sys.stderr) if show else None
    try:
        if bar is not None:
            bar.__enter__()
        for number, raw in enumerate(source, 1):
            line = raw[:-1] if raw.endswith(b"\n") else raw
            if line.endswith(b"\r"):
                line = line[:-1]
            if bar is not None:
                bar.update(len(raw))
            if fmt == "json":
                if not line.strip():
                    continue
                args = parse_json_record(line, number)
                args["headers"] = common_headers + args["headers"]
            else:
                key = None
                value = line
                if sep is not None:
                    k, found, v = line.partition(sep)
                    key, value = (k, v) if found else (None, line)
                args = {"key": key, "value": value, "headers": list(common_headers)}
            if partition is not None and "partition" not in args:
                args["partition"] = partition
            if rate is not None:  # poll returns early when it serves a delivery: wait in a loop
                while (wait := started + sent / rate - time.monotonic()) > 0:
                    producer.poll(wait)
            while True:
                try:
                    producer.produce(topic, on_delivery=delivered, **args)
                    break
                except BufferError:
                    producer.poll(0.1)
            sent += 1
            producer.poll(0)
            if errors:  # a broker lost on the way: librdkafka retries until message.timeout.ms
                break
        remaining = producer.flush(conn.timeout + 5)
    except ck.KafkaException as exc:
        raise CliError(error_sentence(exc, f"producing to {topic!r}")) from None
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
        if path is not None:
            source.close()
    if errors:
        raise CliError(errors[0])
    if remaining:
        raise CliError(f"{remaining} records to {topic!r} were not acknowledged within "
                       f"{conn.timeout + 5:g} s (REQUEST_TIMED_OUT)")
    elapsed = time.monotonic() - started
    rows = [{"partition": p, "records": s[0], "first_offset": s[1] if acks != "0" else None,
             "last_offset": s[2] if acks != "0" else None} for p, s in sorted(stats.items())]
    if fmt == "json":
        emit_json({"topic": topic, "records": sent, "seconds": round(elapsed, 3), "partitions": rows})
    else:
        table(["TOPIC", "PARTITION", "RECORDS", "FIRST-OFFSET", "LAST-OFFSET"],
              [(topic, r["partition"], r["records"], r["first_offset"], r["last_offset"]) for r in rows])
        click.echo(f"{sent} records in {elapsed:.2f} s", err=True)
