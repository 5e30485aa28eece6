"""The plugin's promise: 100 tests, each with a fresh broker, in under 30 s. Each test
produces and consumes one record with confluent-kafka on its own ``moldau_broker``.
Runs only with MOLDAU_TEST_HUNDRED=1 (about 10-20 s here; CI's budget is spent), e.g.
``MOLDAU_TEST_HUNDRED=1 pytest tests/testing/test_hundred_brokers.py --durations=3``."""

from __future__ import annotations

import os

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from moldau.testing import Broker

pytestmark = pytest.mark.skipif(os.environ.get("MOLDAU_TEST_HUNDRED") != "1",
                                reason="set MOLDAU_TEST_HUNDRED=1 to measure 100 fresh brokers")


_warm: list[bool] = []


@pytest.mark.parametrize("n", range(100))
def test_fresh_broker(moldau_broker: Broker, n: int) -> None:
    if _warm:  # the process's first broker also imports Moldau (seconds on a busy machine)
        assert moldau_broker.started_in_s < 0.3, moldau_broker.started_in_s
    _warm.append(True)
    producer = Producer({"bootstrap.servers": moldau_broker.bootstrap, "linger.ms": 0})
    delivered: list[int] = []
    producer.produce("t", f"record {n}".encode(), partition=0,
                     on_delivery=lambda err, msg: delivered.append(msg.offset()))
    assert producer.flush(10) == 0
    assert delivered == [0]  # a fresh broker: the topic is new
    consumer = Consumer({"bootstrap.servers": moldau_broker.bootstrap, "group.id": "g",
                         "fetch.wait.max.ms": 10})
    try:
        consumer.assign([TopicPartition("t", 0, 0)])
        msg = None
        for _ in range(100):
            msg = consumer.poll(0.1)
            if msg is not None and not msg.error():
                break
        assert msg is not None and msg.value() == f"record {n}".encode()
    finally:
        consumer.close()
