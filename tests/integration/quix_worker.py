"""A quixstreams application in exactly-once mode with state, run as its own process by
tests/integration/test_txn_frameworks.py so that it can be killed with kill -9.

Usage: python quix_worker.py BOOTSTRAP SOURCE SINK GROUP STATE_DIR IDLE_SECONDS DELAY_MS

Counts SOURCE's records per key in a RocksDB store (backed by a changelog topic, which
quixstreams writes in the same transaction as the output and the consumed offsets) and
writes ``b"<input value>|<count>"`` to SINK under the same key. Stops once no record has
come for IDLE_SECONDS (0: runs until killed). DELAY_MS slows each record, so that a test
can kill the process mid-run. The transactional id is the group's (see below).
"""

from __future__ import annotations

import faulthandler
import signal
import sys
import time

from quixstreams import Application


def main() -> None:
    faulthandler.register(signal.SIGUSR1)  # a stuck run's stacks, for the test's failure message
    bootstrap, source, sink, group, state_dir, idle, delay_ms = sys.argv[1:8]
    delay = int(delay_ms) / 1000
    app = Application(
        broker_address=bootstrap, consumer_group=group, auto_offset_reset="earliest",
        processing_guarantee="exactly-once", state_dir=state_dir, commit_interval=0.3,
        loglevel="DEBUG",
        # a restarted incarnation's rebalance should not wait out a killed member
        consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 500},
        # quixstreams draws a random transactional.id per run by default: a killed run's
        # open transaction would then hold the last stable offset until its timeout (60 s).
        # One id per group lets the next run's InitProducerId fence it and abort it at once.
        producer_extra_config={"transactional.id": f"{group}-eos", "transaction.timeout.ms": 10000},
    )
    inputs = app.topic(source, key_deserializer="str", value_deserializer="bytes")
    outputs = app.topic(sink, key_serializer="str", value_serializer="bytes")

    def count(value: bytes, state) -> bytes:
        n = state.get("count", 0) + 1
        state.set("count", n)
        if delay:
            time.sleep(delay)
        return value + b"|%d" % n

    app.dataframe(inputs).apply(count, stateful=True).to_topic(outputs)
    app.run(timeout=float(idle))


if __name__ == "__main__":
    main()
