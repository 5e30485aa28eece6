"""Fixtures for the reference tests: Apache Kafka beside Moldau (docs/05-testing.md).

Gated: nothing here runs unless ``MOLDAU_REFERENCE=1`` (``scripts/kafka-reference test``
sets it), so the default test command never calls Maven or starts a JVM. With the gate
open, a missing ``java``/``mvn`` (or ``go`` for the Go client test) skips with the reason.

- ``kafka`` (per module): one Apache Kafka node, jars resolved on first use.
- ``moldau`` (per module): one ``moldau serve`` with the settings the Kafka node is given
  (``group.initial.rebalance.delay.ms=0``), from tests/integration/broker_process.py.
- ``pair``: both, as ``{"kafka": ..., "moldau": ...}``: a differential test runs the same
  scenario on each and compares what they answered.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from integration.broker_process import Broker

from .kafka_process import KafkaBroker, KafkaUnavailable, tools_available

ENABLED = os.environ.get("MOLDAU_REFERENCE") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ENABLED:
        return
    skip = pytest.mark.skip(reason="reference tests: set MOLDAU_REFERENCE=1 (scripts/kafka-reference test)")
    for item in items:
        if "tests/reference/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)


@pytest.fixture(scope="module")
def kafka() -> Iterator[KafkaBroker]:
    missing = tools_available()
    if missing:
        pytest.skip(missing)
    broker = KafkaBroker(heap="512m")
    try:
        broker.start()
    except KafkaUnavailable as exc:
        broker.dispose()
        pytest.skip(f"no reference Kafka: {exc}")
    yield broker
    broker.dispose()


@pytest.fixture(scope="module")
def moldau() -> Iterator[Broker]:
    broker = Broker({"group.initial.rebalance.delay.ms": 0}, name="reference")
    broker.start()
    yield broker
    broker.dispose()


@pytest.fixture(scope="module")
def pair(kafka: KafkaBroker, moldau: Broker) -> dict[str, object]:
    return {"kafka": kafka, "moldau": moldau}
