"""A consume-transform-produce worker with confluent-kafka's transactions, run as its own
process by tests/integration/test_txn_eos.py so that it can be killed with kill -9.

Usage: python txn_worker.py BOOTSTRAP SOURCE SINK GROUP TRANSACTIONAL_ID

Reads SOURCE (partition 0, from the group's committed offset, read_committed), writes
each record's value + b"-out" to SINK partition 0 and commits the consumed offsets in
the same transaction (send_offsets_to_transaction), forever. The consumer is assigned,
not subscribed, so a restart does not wait for a rebalance; its committed offset is
read with require_stable (KIP-447), so it waits for a transaction still being decided.
"""

from __future__ import annotations

import sys

from confluent_kafka import Consumer, Producer, TopicPartition


def main() -> None:
    bootstrap, source, sink, group, txn_id = sys.argv[1:6]
    producer = Producer({
        "bootstrap.servers": bootstrap, "transactional.id": txn_id, "transaction.timeout.ms": 10000,
        "linger.ms": 2,
    })
    producer.init_transactions(60)
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
        "auto.offset.reset": "earliest", "isolation.level": "read_committed",
    })
    consumer.assign([TopicPartition(source, 0)])
    print("ready", flush=True)
    while True:
        messages = [m for m in consumer.consume(50, timeout=0.5) if not m.error()]
        if not messages:
            continue
        producer.begin_transaction()
        for m in messages:
            producer.produce(sink, key=m.key(), value=m.value() + b"-out", partition=0)
        producer.send_offsets_to_transaction(
            consumer.position(consumer.assignment()), consumer.consumer_group_metadata(), 60
        )
        producer.commit_transaction(60)


if __name__ == "__main__":
    main()
