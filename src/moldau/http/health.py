"""``/healthz`` (the process is alive and its loop turns) and ``/readyz`` (it serves).

Ready means what a load balancer or Kubernetes needs to know before sending clients:
the metadata is loaded, every local log is recovered, in a cluster the broker holds a
live registration (checked against the metadata store on each call, so a lost etcd
session shows), and it is not shutting down. Each failed check is named in the body.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from moldau.broker.broker import Broker


@dataclass
class Readiness:
    """What the runner knows about the broker's life beyond the broker object."""

    #: started with ``--cluster``: registration in the metadata store is required
    cluster: bool = False
    #: the runner finished start-up (listeners bound, cluster joined)
    serving: bool = False
    shutting_down: bool = False

    def failures(self, broker: Broker) -> list[str]:
        """The checks that do not pass, by name (empty: ready)."""
        failed = []
        if not broker.metadata_loaded:
            failed.append("metadata not loaded")
        if not broker.storage_recovered:
            failed.append("storage not recovered")
        if self.cluster and broker.storage_recovered and not _registered(broker):
            failed.append("not registered in the cluster")
        if not self.serving:
            failed.append("listeners not started")
        if self.shutting_down:
            failed.append("shutting down")
        return failed


#: the application's :class:`Readiness`, set by the HTTP server
READINESS = web.AppKey("readiness", Readiness)


def _registered(broker: Broker) -> bool:
    try:
        return any(b.broker_id == broker.node_id for b in broker.store.brokers())
    except Exception:  # noqa: BLE001 - a store that cannot answer is a failed check
        return False


def routes(app: web.Application, broker: Broker) -> None:
    """Add ``/healthz`` and ``/readyz`` to ``app`` (whose ``READINESS`` is set)."""
    readiness = app[READINESS]

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_request: web.Request) -> web.Response:
        failed = readiness.failures(broker)
        body = json.dumps({"ready": not failed, "failed": failed}) + "\n"
        return web.Response(text=body, content_type="application/json", status=503 if failed else 200)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
