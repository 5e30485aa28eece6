#!/usr/bin/env python3
"""The long protocol fuzz run: mutated request frames of every API and version the
broker serves, against a fresh ``moldau serve`` process.

    .venv/bin/python bench/fuzz.py --frames 1000000 --seed 1
    .venv/bin/python bench/fuzz.py --frames 20000 --seed 7 --batch 200 --connections 8

Frames are built, mutated and checked by ``tests/integration/fuzzing.py`` (see its
docstring for the mutations and the checks); the suite runs the same fuzzer for about a
minute in ``tests/integration/test_fuzz.py``. This script runs it as long as asked,
prints progress on stderr and, at the end, one summary line

    frames sent N, crashes C, hangs H, tracebacks T, peak RSS M MB, R frames/s (...)

followed by every distinct finding (for a traceback: the frame that caused it, its
API, version, mutation and bytes, so it can be replayed). The exit status is 0 when
there were no crashes, hangs, tracebacks or memory over ``--rss-limit-mb``, 1 otherwise.
A seed and a frame count give the same frames every time. The broker's data and log
go to a temporary folder, kept with ``--keep`` (its path is printed). The broker runs
with faulthandler on SIGUSR1: when it stops answering, its threads' stacks are printed
(what a stall is doing). A batch is cut short when the broker's RSS passes twice
``--rss-limit-mb``, so a runaway allocation cannot take the machine down.
``--exclude REGEX`` leaves out frames whose label ("API vN: mutation") matches, to look
past a known open issue, e.g. ``--exclude '^CreatePartitions |size prefix 104857600'``.

Use the project's venv (``pip install -e '.[test]'``): confluent-kafka is needed for the
real-client round trip checked every ``--roundtrip-every`` batches.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from integration.broker_process import Broker  # noqa: E402

# the broker dumps every thread's stack to its log on SIGUSR1: what a stall is doing
_WITH_FAULTHANDLER = (
    "import faulthandler, runpy, signal, sys; faulthandler.register(signal.SIGUSR1, all_threads=True); "
    "sys.argv[0] = 'moldau'; runpy.run_module('moldau', run_name='__main__', alter_sys=True)"
)


class FuzzedBroker(Broker):
    def command(self) -> list[str]:
        cmd = super().command()
        at = cmd.index("serve")
        return [sys.executable, "-c", _WITH_FAULTHANDLER, *cmd[at:]]
from integration.fuzzing import Fuzzer, Stats, describe  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=100_000, help="frames to send (default 100000)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--batch", type=int, default=1000, help="frames between health checks (default 1000)")
    ap.add_argument("--connections", type=int, default=16, help="connections per batch (default 16)")
    ap.add_argument("--hang-timeout", type=float, default=20.0,
                    help="seconds a connection may go unanswered and unclosed (default 20)")
    ap.add_argument("--rss-limit-mb", type=float, default=1024.0, help="RSS bound (default 1024)")
    ap.add_argument("--roundtrip-every", type=int, default=20,
                    help="real-client round trip every N batches (default 20, 0: never)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="broker property, repeatable")
    ap.add_argument("--exclude", metavar="REGEX",
                    help="leave out frames whose label (API vN: mutation) matches, e.g. known open issues")
    ap.add_argument("--keep", action="store_true", help="keep the broker's folder (data, log)")
    args = ap.parse_args()

    settings = dict(s.split("=", 1) for s in args.set)
    broker = FuzzedBroker(settings, name="fuzz")
    broker.start()
    print(f"broker pid {broker.pid} on {broker.bootstrap}, log {broker.log_path}", file=sys.stderr)
    last = [time.monotonic()]
    shown = [0]

    def progress(st: Stats) -> None:
        for finding in st.findings[shown[0]:]:
            print(describe(finding), file=sys.stderr, flush=True)
        shown[0] = len(st.findings)
        if time.monotonic() - last[0] >= 10 or st.frames >= args.frames:
            last[0] = time.monotonic()
            print(f"[{st.seconds:6.0f}s] {st.line()}", file=sys.stderr, flush=True)

    try:
        fuzzer = Fuzzer(broker, args.seed, batch_size=args.batch, connections=args.connections,
                        hang_timeout=args.hang_timeout, rss_limit_mb=args.rss_limit_mb,
                        roundtrip_every=args.roundtrip_every, exclude=args.exclude)
        fuzzer.prepare()
        stats = fuzzer.run(args.frames, progress=progress)
        if stats.crashes and broker.is_running():  # unresponsive: show where it is stuck
            mark = broker.log_size()
            os.kill(broker.pid, signal.SIGUSR1)
            time.sleep(1)
            print("--- broker stacks ---\n" + broker.log_text(mark)[-6000:], file=sys.stderr)
    finally:
        if args.keep:
            broker.stop()
            print(f"kept {broker.work_dir}", file=sys.stderr)
        else:
            broker.dispose()
    print(stats.line())
    for finding in stats.findings:
        print(describe(finding))
    bad = stats.crashes or stats.hangs or stats.tracebacks or any(f.kind == "rss" for f in stats.findings)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
