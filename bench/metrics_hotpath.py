"""The metrics' cost on the produce path itself, in process, without the network.

One Moldau broker object (in-memory metadata store, logs in a temp folder) and one
topic; the same one-record Produce v9 frame is handed to the dispatcher as a
connection would, alternately through ``Dispatcher.__call__`` (metrics off) and
``Dispatcher.measured`` (metrics on: request timing, per-topic counters), in rounds
of ``--requests``; the figures are the CPU time (the loop thread's) per request of each,
in its best round and its median round over ``--rounds``.
Deterministic enough on a busy machine to see a microsecond, which the end-to-end
comparison (bench/metrics_overhead.py) cannot.
Run: ``.venv/bin/python bench/metrics_hotpath.py [--requests 20000] [--rounds 7]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import moldau.handlers  # noqa: F401 - registers the API handlers
from moldau.broker.broker import Broker, Endpoint
from moldau.config.broker import BrokerConfig
from moldau.handlers.registry import Dispatcher, codec_for
from moldau.metastore.memory import MemoryMetaStore
from moldau.protocol.header import encode_request_header
from moldau.protocol.messages import ALL_APIS
from moldau.records.record import build_batch

PRODUCE = ALL_APIS[0]
VERSION = 9


class _Connection:
    """What the dispatcher reads of a connection on a plaintext listener."""

    authenticator = None
    principal = "User:ANONYMOUS"
    peer = "bench"

    def close(self) -> None:
        raise RuntimeError("the dispatcher closed the bench connection")


def _frame(topic: str) -> bytearray:
    codec = codec_for(PRODUCE)
    req = codec.Request
    data = req.of("topic_data")
    part = data.of("partition_data")
    batch = build_batch([(None, b"x" * 100, (), int(time.time() * 1000))])
    request = req(transactional_id=None, acks=1, timeout_ms=30000,
                  topic_data=[data(name=topic, partition_data=[part(index=0, records=batch)])])
    flexible = PRODUCE.is_flexible(VERSION)
    return encode_request_header(0, VERSION, 1, "bench", flexible) + codec.encode_request(VERSION, request)


async def main(requests: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="moldau-bench-hotpath-") as folder:
        broker = Broker(BrokerConfig({}), Path(folder), MemoryMetaStore(), Endpoint("127.0.0.1", 9))
        await broker.start()
        try:
            topic = "hotpath"
            await broker.controller.create_topic(broker.controller.plan_topic(topic, 1, 1, {}))
            dispatcher = Dispatcher(broker)
            assert dispatcher.stats is not None
            connection = _Connection()
            frame = _frame(topic)
            times: dict[str, list[float]] = {"off": [], "on": []}
            for run in range(rounds):
                order = [("off", dispatcher.__call__), ("on", dispatcher.measured)]
                for name, entry in order if run % 2 == 0 else order[::-1]:
                    started = time.thread_time()
                    for _ in range(requests):
                        answer = entry(bytearray(frame), connection)
                        assert isinstance(answer, list), answer
                    times[name].append((time.thread_time() - started) / requests)
            counted = broker.stats.topic_in[topic][0]
            print(f"one-record Produce v{VERSION}, acks=1, handled in process, CPU per request "
                  f"({rounds} rounds of {requests}; {counted} records counted):")
            for label, pick in (("best round", min), ("median round", statistics.median)):
                off, on = pick(times["off"]), pick(times["on"])
                print(f"  {label:12}: metrics off {off * 1e6:.2f} us, on {on * 1e6:.2f} us "
                      f"({(on - off) * 1e6:+.2f} us, {on / off:.3f}x)")
        finally:
            await broker.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds))
