"""A real Moldau broker inside a test suite, with faults on demand.

``with moldau.testing.Broker() as broker:`` gives a broker on a free loopback port with
a fresh data directory (``broker.bootstrap``); ``moldau.testing.Cluster(3)`` a cluster
over etcd. Both inject faults the way librdkafka's mock cluster does
(``broker.fail("Produce", "NOT_LEADER_OR_FOLLOWER")``, ``set_latency``,
``drop_connections``, ``pause``, ``kill``/``restart``, ``rebalance``; a cluster's
``move_leader`` and ``set_down``). The pytest fixtures are in :mod:`moldau.testing.plugin`
(registered by entry point). See docs/14-testing-plugin.md.

Importing this package costs nothing (pytest loads the plugin in every run): its names
are imported on first use, and the broker itself at the first start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from moldau.testing.broker import Broker as Broker
    from moldau.testing.broker import BrokerError as BrokerError
    from moldau.testing.cluster import Cluster as Cluster
    from moldau.testing.cluster import etcd_available as etcd_available
    from moldau.testing.control import ControlError as ControlError

_WHERE = {
    "Broker": "moldau.testing.broker",
    "BrokerError": "moldau.testing.broker",
    "Cluster": "moldau.testing.cluster",
    "etcd_available": "moldau.testing.cluster",
    "ControlError": "moldau.testing.control",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'moldau.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
