"""``moldau consume TOPIC...``: records to stdout, as kcat -C prints them.

Two ways to read: *assigned* (the default) reads the partitions given with ``-p`` (all
of them otherwise) without a group; ``-g GROUP`` joins a consumer group, which assigns
the partitions and keeps the offsets committed. ``-o`` says where to start:
``earliest`` (the default), ``latest``, an offset ``N``, ``-N`` (N records before the
end of each partition), or ``@TIME`` (epoch milliseconds or ISO 8601: the first record
at or after it). In a group, ``-o`` given explicitly overrides the committed offsets;
otherwise the group's committed offsets are used, and ``-o`` (default earliest) only
where there are none. The command stops at the end of the partitions unless
``--follow``, or after ``-n`` records.

``-f FORMAT`` prints each record as kcat's ``-f`` does: ``%k`` key, ``%v`` (or ``%s``)
value, ``%o`` offset, ``%p`` partition, ``%t`` topic, ``%T`` timestamp (ms), ``%h``
headers (``k=v,...``), ``%K``/``%S`` key and value lengths (-1 when null), ``%%``;
escapes ``\\n \\t \\r \\\\``. ``--format json`` prints one JSON object per record.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from typing import Any

import click

from moldau.cli.client import (
    CliError,
    Conn,
    ErrorWatch,
    connection_options,
    error_sentence,
    kafka,
    metadata,
    unreachable,
)

_ESCAPES = {"n": b"\n", "t": b"\t", "r": b"\r", "\\": b"\\", "0": b"\0"}
_FIELDS = set("kvsopthTKS")


def compile_format(fmt: str) -> list[bytes | str]:
    """kcat's -f string -> literal bytes and field letters, in order."""
    parts: list[bytes | str] = []
    lit = bytearray()
    i = 0
    while i < len(fmt):
        c = fmt[i]
        if c in "%\\" and i + 1 < len(fmt):
            nxt = fmt[i + 1]
            if c == "\\" and nxt in _ESCAPES:
                lit += _ESCAPES[nxt]
            elif c == "%" and nxt == "%":
                lit += b"%"
            elif c == "%" and nxt in _FIELDS:
                if lit:
                    parts.append(bytes(lit))
                    lit.clear()
                parts.append(nxt)
            else:
                raise click.BadParameter(f"unknown token {c}{nxt} in {fmt!r}", param_hint="-f")
            i += 2
            continue
        lit += c.encode()
        i += 1
    if lit:
        parts.append(bytes(lit))
    return parts


def render(parts: list[bytes | str], msg: Any) -> bytes:
    out = bytearray()
    for part in parts:
        if isinstance(part, bytes):
            out += part
            continue
        if part == "k":
            out += msg.key() or b""
        elif part in "vs":
            out += msg.value() or b""
        elif part == "o":
            out += str(msg.offset()).encode()
        elif part == "p":
            out += str(msg.partition()).encode()
        elif part == "t":
            out += msg.topic().encode()
        elif part == "T":
            out += str(msg.timestamp()[1]).encode()
        elif part == "K":
            out += str(-1 if msg.key() is None else len(msg.key())).encode()
        elif part == "S":
            out += str(-1 if msg.value() is None else len(msg.value())).encode()
        elif part == "h":
            out += b",".join(k.encode() + b"=" + (v or b"") for k, v in (msg.headers() or []))
    return bytes(out)


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "backslashreplace")


def as_json(msg: Any) -> dict[str, Any]:
    return {"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset(),
            "timestamp": msg.timestamp()[1], "key": _text(msg.key()), "value": _text(msg.value()),
            "headers": [[k, _text(v)] for k, v in (msg.headers() or [])]}


def parse_start(text: str) -> tuple[str, int]:
    """``-o`` -> (kind, number): earliest, latest, offset N, relative -N, time ms."""
    t = text.strip().lower()
    if t in ("earliest", "beginning", "start", "oldest"):
        return ("earliest", 0)
    if t in ("latest", "end", "newest"):
        return ("latest", 0)
    if t.startswith("@"):
        when = text.strip()[1:]
        if when.lstrip("-").isdigit():
            return ("time", int(when))
        try:
            parsed = datetime.fromisoformat(when.replace("Z", "+00:00"))
        except ValueError:
            raise click.BadParameter(f"not a time: {when!r} (epoch ms or ISO 8601)", param_hint="-o") from None
        if parsed.tzinfo is None:
            parsed = parsed.astimezone()  # a time without a zone is local time, as `date` prints it
        return ("time", int(parsed.timestamp() * 1000))
    if t.lstrip("-").isdigit():
        n = int(t)
        return ("relative", -n) if n < 0 else ("offset", n)
    raise click.BadParameter(f"expected earliest, latest, N, -N or @TIME, got {text!r}", param_hint="-o")


def start_offsets(consumer: Any, tps: list[Any], start: tuple[str, int], timeout: float) -> list[Any]:
    """The assigned partitions with the offsets ``-o`` asks for."""
    ck = kafka()
    kind, n = start
    if kind == "earliest":
        return [ck.TopicPartition(tp.topic, tp.partition, ck.OFFSET_BEGINNING) for tp in tps]
    if kind == "latest":
        return [ck.TopicPartition(tp.topic, tp.partition, ck.OFFSET_END) for tp in tps]
    if kind == "offset":
        return [ck.TopicPartition(tp.topic, tp.partition, n) for tp in tps]
    if kind == "relative":
        out = []
        for tp in tps:
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
            out.append(ck.TopicPartition(tp.topic, tp.partition, max(low, high - n)))
        return out
    found = consumer.offsets_for_times([ck.TopicPartition(tp.topic, tp.partition, n) for tp in tps],
                                       timeout=timeout)
    return [ck.TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else ck.OFFSET_END)
            for tp in found]


@click.command()
@click.argument("topics", nargs=-1, required=True)
@click.option("-g", "--group", default=None, help="Consume as a member of this group (offsets committed).")
@click.option("-p", "--partition", "partitions", type=click.IntRange(min=0), multiple=True,
              help="Only this partition (assigned mode); repeatable.")
@click.option("-o", "--offset", "start", default="earliest", show_default=True, metavar="WHERE",
              help="earliest, latest, N, -N (N before the end) or @TIME (epoch ms or ISO 8601).")
@click.option("-n", "--count", type=click.IntRange(min=1), default=None, help="Stop after N records.")
@click.option("--follow", is_flag=True, help="Wait for new records at the end instead of stopping.")
@click.option("-f", "template", default="%v\\n", show_default=True, metavar="FORMAT",
              help="Output format, as kcat's -f (%k %v %o %p %t %T %h %K %S).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: -f's format; json: one JSON object per record.")
@click.option("--read-committed", is_flag=True, help="Skip records of aborted transactions.")
@click.option("--progress/--no-progress", default=None,
              help="With -n, a progress bar on stderr (default: when stdout is redirected and "
                   "stderr is a terminal).")
@connection_options
@click.pass_context
def consume(ctx: click.Context, topics: tuple[str, ...], group: str | None, partitions: tuple[int, ...],
            start: str, count: int | None, follow: bool, template: str, fmt: str, read_committed: bool,
            progress: bool | None, conn: Conn) -> None:
    """Print records of TOPICS: assigned partitions, or as a member of a group (-g)."""
    ck = kafka()
    parts = compile_format(template)
    where = parse_start(start)
    explicit_start = ctx.get_parameter_source("start") != click.core.ParameterSource.DEFAULT
    if group and partitions:
        raise click.UsageError("-p picks partitions without a group; a group (-g) assigns them itself")
    watch = ErrorWatch()
    config = conn.config(**{
        "group.id": group or "moldau-cli",
        "enable.partition.eof": True,
        "enable.auto.commit": bool(group),
        "auto.offset.reset": "latest" if where[0] == "latest" else "earliest",
        "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        "error_cb": watch,
    })
    consumer = ck.Consumer(config)
    out = sys.stdout.buffer
    assigned: set[tuple[str, int]] = set()
    at_end: set[tuple[str, int]] = set()
    seen = 0
    show = count is not None and (progress if progress is not None
                                  else sys.stderr.isatty() and not sys.stdout.isatty())
    bar = click.progressbar(length=count, label="consuming", file=sys.stderr) if show and count else None
    try:
        known = {}
        for t in topics:
            md = metadata(consumer, conn, watch, t).topics.get(t)
            if md is None or md.error is not None:
                err = md.error if md is not None else None
                name = err.name() if err is not None else "UNKNOWN_TOPIC_OR_PART"
                raise CliError(f"topic {t!r}: {err.str() if err is not None else 'unknown'} ({name})")
            known[t] = sorted(md.partitions)
        if group:
            def on_assign(c: Any, tps: list[Any]) -> None:
                assigned.update((tp.topic, tp.partition) for tp in tps)
                if explicit_start:
                    c.assign(start_offsets(c, tps, where, conn.timeout))

            def on_revoke(c: Any, tps: list[Any]) -> None:
                for tp in tps:
                    assigned.discard((tp.topic, tp.partition))
                    at_end.discard((tp.topic, tp.partition))

            consumer.subscribe(list(topics), on_assign=on_assign, on_revoke=on_revoke)
        else:
            tps = []
            for t in topics:
                for p in partitions or known[t]:
                    if p not in known[t]:
                        raise CliError(f"topic {t!r} has no partition {p} (UNKNOWN_TOPIC_OR_PART)")
                    tps.append(ck.TopicPartition(t, p))
            consumer.assign(start_offsets(consumer, tps, where, conn.timeout))
            assigned.update((tp.topic, tp.partition) for tp in tps)
        deadline = time.monotonic() + conn.timeout
        while count is None or seen < count:
            msg = consumer.poll(0.2)
            if msg is None:
                # before the first answer a lost cluster ends the command; once reading, a
                # broker that restarts is librdkafka's to reconnect to (as kcat keeps going)
                bad = watch.fatal() if not seen and not at_end else None
                if bad is not None:
                    raise unreachable(conn, bad)
                if group and not assigned and not follow and time.monotonic() > deadline:
                    raise CliError(f"group {group!r} assigned no partitions within {conn.timeout:g} s")
                continue
            err = msg.error()
            key = (msg.topic(), msg.partition())
            if err is not None:
                if err.code() == ck.KafkaError._PARTITION_EOF:
                    at_end.add(key)
                    if not follow and assigned and assigned <= at_end:
                        break
                    continue
                raise CliError(error_sentence(ck.KafkaException(err), f"consuming {msg.topic()!r}"))
            at_end.discard(key)
            seen += 1
            if fmt == "json":
                out.write(json.dumps(as_json(msg)).encode() + b"\n")
            else:
                out.write(render(parts, msg))
            out.flush()
            if bar is not None:
                bar.update(1)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        sys.stderr.close()  # the reader (| head) has gone: nothing more to say
    except ck.KafkaException as exc:
        raise CliError(error_sentence(exc, "consuming")) from None
    finally:
        if bar is not None:
            bar.render_finish()
        consumer.close()
