#!/usr/bin/env python3
"""Summarize py-spy ``--format raw`` profiles (collapsed stacks) as text.

    python bench/profile_summary.py bench/results/profile-*/produce_*.txt [--top 25]

For each file: how the samples split between the event loop and other threads,
working or waiting; then, over the event loop's working samples only, the functions
with the most self time (the leaf frame) and the Moldau functions with the most
inclusive time (counted once per stack). Line numbers are dropped so one function is one row.
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^():]+)(?::\d+)?\)$")


def short(frame: str) -> str:
    m = FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m["file"]
    for marker in ("/site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m['fn']} ({path})"


WAITING = ("_worker (concurrent/futures/thread.py)", "Condition.wait (threading.py)",
           "EpollSelector.select (selectors.py)")
BOILERPLATE = ("moldau/cli/", "moldau/broker/runner.py", "moldau/__main__.py")


def summarize(path: Path, top: int) -> str:
    self_t: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    where: collections.Counter[str] = collections.Counter()
    total = busy = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [short(f) for f in stack.split(";") if f and not f.startswith("process ")
                  and not f.startswith("thread ")]
        if not frames:
            continue
        total += n
        leaf = frames[-1]
        thread = "event loop" if any("run_forever" in f for f in frames) else "other threads"
        waiting = leaf in WAITING
        where[f"{thread}: {'waiting (queue get / epoll / condition)' if waiting else 'working'}"] += n
        if thread != "event loop" or waiting:
            continue
        busy += n
        self_t[leaf] += n
        for f in set(frames):
            if "moldau/" in f and not any(b in f for b in BOILERPLATE):
                incl[f] += n
    out = [f"== {path.name}: {total} samples (py-spy drops sleeping threads, but a thread blocked "
           f"in a C call may still count: hence the 'waiting' rows)"]
    if not total:
        return "\n".join(out)
    for k, n in sorted(where.items()):
        out.append(f"  {n / total * 100:6.1f}%  {k}")
    if not busy:
        return "\n".join(out)
    out.append(f"  share of the event loop's working samples ({busy}):")
    out.append(f"  {'self %':>7}  function (leaf frame)")
    for f, n in self_t.most_common(top):
        out.append(f"  {n / busy * 100:6.1f}%  {f}")
    out.append(f"  {'incl %':>7}  Moldau function (anywhere on the stack)")
    for f, n in incl.most_common(top):
        out.append(f"  {n / busy * 100:6.1f}%  {f}")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--top", type=int, default=20)
    args = ap.parse_args()
    for p in args.files:
        print(summarize(p, args.top))
        print()


if __name__ == "__main__":
    main()
