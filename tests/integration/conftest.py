"""Fixtures for integration tests against a real ``moldau serve`` process.

- ``broker``: a fresh broker for one test (own port, own data dir).
- ``shared_broker``: one broker per test module, for tests that only need their own topic.
- ``make_broker(**settings)``: a factory for brokers with ``--set`` options, e.g.
  ``make_broker(**{"message.max.bytes": 4096})`` or ``make_broker(num_partitions=3)``.
- ``topic``: a unique topic name (not created).
- ``etcd`` (per module) and ``cluster(broker_id, **settings)``: cluster tests' etcd and
  ``moldau serve --cluster`` brokers, each test in a cluster (key prefix) of its own.

Every broker started here is killed (only by its own PID) and its folders removed at
teardown. When a test fails, the part of each live broker's log written during the
test is attached to the report.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from .broker_process import Broker
from .etcd_process import SESSION_MS, ClusterBroker, EtcdServer, running_etcd
from .kafka_helpers import unique_topic

_LIVE: list[Broker] = []
_LOG_MARKS = pytest.StashKey[dict]()


def _new_broker(settings: dict[str, object], name: str) -> Broker:
    b = Broker(settings, name=name)
    _LIVE.append(b)
    try:
        b.start()
    except BaseException:
        _dispose(b)
        raise
    return b


def _dispose(b: Broker) -> None:
    try:
        b.dispose()
    finally:
        if b in _LIVE:
            _LIVE.remove(b)


@pytest.fixture
def broker():
    b = _new_broker({}, "fn")
    yield b
    _dispose(b)


@pytest.fixture(scope="module")
def shared_broker():
    b = _new_broker({}, "module")
    yield b
    _dispose(b)


@pytest.fixture
def make_broker():
    made: list[Broker] = []

    def make(**settings: object) -> Broker:
        b = _new_broker(settings, f"made{len(made)}")
        made.append(b)
        return b

    yield make
    for b in made:
        _dispose(b)


@pytest.fixture
def topic(request) -> str:
    return unique_topic(request.node.name)


# ------------------------------------------------- broker logs on failure
@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item.stash[_LOG_MARKS] = {id(b): b.log_size() for b in _LIVE}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed or call.when == "teardown":
        return
    marks = item.stash.get(_LOG_MARKS, {})
    for b in _LIVE:
        text = b.log_text(marks.get(id(b), 0))
        if len(text) > 20000:
            text = "[... cut ...]\n" + text[-20000:]
        report.sections.append((f"moldau {b.name} log ({b.bootstrap}, pid {b.pid})", text))


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdServer]:
    with running_etcd() as server:
        yield server


@pytest.fixture
def cluster(etcd: EtcdServer) -> Iterator[Callable[..., ClusterBroker]]:
    """``cluster(broker_id)`` starts a broker of this test's own cluster (key prefix)."""
    url = f"{etcd.url}/it-{uuid.uuid4().hex[:8]}"
    made: list[ClusterBroker] = []

    def start(broker_id: int, **settings: object) -> ClusterBroker:
        broker = ClusterBroker(broker_id, url, {"broker.session.timeout.ms": SESSION_MS, **settings})
        made.append(broker)
        return broker.start()

    start.url = url  # type: ignore[attr-defined]
    yield start
    for broker in made:
        broker.dispose()
