"""A faust-streaming agent with ``processing_guarantee="exactly_once"`` and a table, run
as its own process by tests/integration/test_txn_frameworks.py.

Usage: python faust_worker.py BOOTSTRAP SOURCE SINK APP_ID DATA_DIR DELAY_MS

Counts SOURCE's records per key in a table (in memory, backed by its changelog topic)
and sends ``b"<input value>|<count>"`` to SINK under the same key, until killed.
DELAY_MS slows each record.

Why the test does not kill it: faust-streaming 0.15.3 commits an input's offset (and its
table's changelog write) with the transactional producer of the input's partition, but
picks an output's producer by the output's partition as its *consumer's* metadata knows
it; for a topic the app does not consume that is unknown, and the output goes through
its plain, non-transactional producer. A kill -9 between an output and the commit of
its input then duplicates the output on restart, read committed (seen here: about 20 in
1200 per kill). That is faust's, not the broker's: Kafka would show the same.
"""

from __future__ import annotations

import asyncio
import sys

import faust


def main() -> None:
    bootstrap, source, sink, app_id, data_dir, delay_ms = sys.argv[1:7]
    delay = int(delay_ms) / 1000
    app = faust.App(
        app_id, broker=f"kafka://{bootstrap}", processing_guarantee="exactly_once",
        datadir=data_dir, store="memory://", topic_partitions=2, web_enabled=False,
        broker_commit_interval=0.3, topic_replication_factor=1,
        # a restarted run's rebalance should not wait out a killed member (60 s by default)
        broker_session_timeout=6, broker_heartbeat_interval=0.5,
    )
    inputs = app.topic(source, key_type=bytes, value_type=bytes, value_serializer="raw",
                       key_serializer="raw")
    outputs = app.topic(sink, key_type=bytes, value_type=bytes, value_serializer="raw",
                        key_serializer="raw")
    counts = app.Table("counts", default=int, partitions=2, key_type=bytes, value_type=int)

    @app.agent(inputs)
    async def count(stream):
        async for key, value in stream.items():
            counts[key] += 1
            if delay:
                await asyncio.sleep(delay)
            await outputs.send(key=key, value=value + b"|%d" % counts[key])

    sys.argv = [sys.argv[0], "worker", "-l", "info"]
    app.main()


if __name__ == "__main__":
    main()
