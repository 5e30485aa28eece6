"""A confluent-kafka ShareConsumer in its own process, for tests/integration/test_share_groups.py.

Run by the interpreter that has confluent-kafka >= 2.16 (see share_python() in the test):
the project's test venv pins an older one for quixstreams. Explicit acknowledgement
mode; each delivered record is acknowledged as the options say, then committed with
commit_sync, and one JSON line per record is printed: offset, delivery count, the
acknowledgement sent and whether the broker took it ("ok").

  share_worker.py BOOTSTRAP GROUP TOPIC [--release-first O,..] [--release-always O,..]
                  [--reject O,..] [--hold] [--idle S] [--deadline S]

``--hold`` acknowledges nothing and keeps polling (so the test can kill it with records
in flight). The worker exits once it has seen nothing for ``--idle`` seconds after its
first record, or at ``--deadline``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from confluent_kafka import AcknowledgeType, ShareConsumer


def _offsets(text: str) -> set[int]:
    return {int(x) for x in text.split(",") if x}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("group")
    ap.add_argument("topic")
    ap.add_argument("--release-first", default="")
    ap.add_argument("--release-always", default="")
    ap.add_argument("--reject", default="")
    ap.add_argument("--hold", action="store_true")
    ap.add_argument("--idle", type=float, default=4.0)
    ap.add_argument("--deadline", type=float, default=40.0)
    args = ap.parse_args()
    release_first, release_always, reject = (
        _offsets(args.release_first), _offsets(args.release_always), _offsets(args.reject))
    consumer = ShareConsumer({
        "bootstrap.servers": args.bootstrap, "group.id": args.group,
        "share.acknowledgement.mode": "explicit", "log_level": 3,
    })
    consumer.subscribe([args.topic])
    print(json.dumps({"event": "subscribed"}), flush=True)
    started = time.monotonic()
    last_seen: float | None = None
    released: set[int] = set()
    while time.monotonic() - started < args.deadline:
        if last_seen is not None and time.monotonic() - last_seen > args.idle:
            break
        messages = [m for m in consumer.poll(0.5) if m.error() is None]
        if not messages:
            continue
        last_seen = time.monotonic()
        if args.hold:
            for m in messages:
                print(json.dumps({"o": m.offset(), "d": m.delivery_count(), "a": "hold"}), flush=True)
            continue
        sent = []
        for m in messages:
            o = m.offset()
            if o in release_always or (o in release_first and o not in released):
                released.add(o)
                kind, name = AcknowledgeType.RELEASE, "release"
            elif o in reject:
                kind, name = AcknowledgeType.REJECT, "reject"
            else:
                kind, name = AcknowledgeType.ACCEPT, "accept"
            consumer.acknowledge(m, kind)
            sent.append((m, name))
        results = consumer.commit_sync(10)
        failed = {(tp.topic, tp.partition) for tp, err in (results or {}).items() if err is not None}
        for m, name in sent:
            ok = (m.topic(), m.partition()) not in failed
            print(json.dumps({"o": m.offset(), "d": m.delivery_count(), "a": name, "ok": ok}), flush=True)
    if not args.hold:
        consumer.close()
    print(json.dumps({"event": "done"}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
