"""``moldau.testing.Cluster``: etcd plus N broker processes, for tests of failover.

Theory of operation: as ``moldau cluster`` does (:mod:`moldau.cli.local_cluster`), one
etcd member (:class:`moldau.metastore.etcd_server.EtcdProcess`, tuned to elect in
~50 ms) holds the metadata, and brokers 1..N run as processes
(:class:`moldau.testing.Broker` with ``process=True``) with the test control socket,
so each can be killed, paused and faulted on its own. ``broker.session.timeout.ms`` is
2 s, so a killed broker loses its leaderships within ~2.5 s. Everything lives in one
temp folder removed at :meth:`Cluster.close`.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from pathlib import Path

from moldau.metastore.etcd_server import MISSING_ETCD, EtcdProcess, find_etcd
from moldau.testing.broker import Broker, BrokerError
from moldau.testing.control import ControlError

SESSION_MS = 2000


def etcd_available() -> bool:
    """Whether an etcd binary is installed (a Cluster needs one)."""
    return find_etcd() is not None


class Cluster:
    """``with Cluster(3) as c: ... c.bootstrap ... c.broker(2).kill() ...``"""

    def __init__(self, size: int = 3, settings: dict[str, object] | None = None,
                 log_level: str = "INFO") -> None:
        binary = find_etcd()
        if binary is None:
            raise BrokerError(MISSING_ETCD)
        self.work_dir = Path(tempfile.mkdtemp(prefix="moldau-test-cluster-"))
        self.etcd = EtcdProcess(binary, self.work_dir / "etcd", self.work_dir / "etcd.log")
        self.size = size
        self.settings = {"broker.session.timeout.ms": SESSION_MS, **(settings or {})}
        self.log_level = log_level
        self.brokers: list[Broker] = []
        self.url = ""

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers)

    def broker(self, broker_id: int) -> Broker:
        """The broker with this id (1..size)."""
        return self.brokers[broker_id - 1]

    def start(self) -> Cluster:
        self.etcd.start()
        self.url = f"{self.etcd.url}/t-{uuid.uuid4().hex[:8]}"
        self.brokers = [
            Broker(self.settings, cluster=self.url, broker_id=i, log_level=self.log_level,
                   data_dir=self.work_dir / f"broker-{i}")
            for i in range(1, self.size + 1)
        ]
        for broker in self.brokers:  # launched together: each pays its interpreter's start-up
            broker.port = broker.port or _port()
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(self.size) as pool:
            list(pool.map(lambda b: b.start(), self.brokers))
        return self

    # -- faults of a cluster ------------------------------------------------------------

    def leader(self, topic: str, partition: int = 0) -> int:
        """The partition's leader, as the metadata says (-1: none)."""
        return int(self._any_live().call("leader", topic=topic, partition=partition))

    def move_leader(self, topic: str, partition: int, broker_id: int) -> int:
        """Make ``broker_id`` (an in-sync replica) the leader
        (``rd_kafka_mock_partition_set_leader``); the new leader epoch."""
        return int(self._any_live().call("move_leader", topic=topic, partition=partition, broker_id=broker_id))

    def rebalance(self, group_id: str) -> dict[str, object]:
        """Force ``group_id`` to rebalance, on whichever broker coordinates it."""
        for broker in self.brokers:
            if broker.is_running() and not broker.paused:
                try:
                    return broker.rebalance(group_id)
                except ControlError:
                    continue
        raise BrokerError(f"no running broker coordinates group {group_id!r}")

    def set_down(self, broker_id: int) -> None:
        """Take a broker down as a crash does (``rd_kafka_mock_broker_set_down``):
        SIGKILL; its leaderships move once its session expires."""
        self.broker(broker_id).kill()

    def set_up(self, broker_id: int) -> None:
        """Start it again on its port and data (``rd_kafka_mock_broker_set_up``)."""
        self.broker(broker_id).start()

    def wait_for_leader(self, topic: str, partition: int = 0, *, not_on: int | None = None,
                        timeout: float = 30.0) -> int:
        """Wait until the partition has a live leader (other than ``not_on``)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                leader = self.leader(topic, partition)
            except Exception:  # noqa: BLE001 - the topic may not be known yet
                leader = -1
            if leader > 0 and leader != not_on and self.broker(leader).is_running():
                return leader
            if time.monotonic() > deadline:
                raise BrokerError(f"{topic}-{partition} has no leader other than {not_on} after {timeout} s")
            time.sleep(0.1)

    def _any_live(self) -> Broker:
        for broker in self.brokers:
            if broker.is_running() and not broker.paused:
                return broker
        raise BrokerError("no broker of the cluster is running")

    def close(self) -> None:
        try:
            for broker in self.brokers:  # killed: everything is removed right after
                try:
                    broker.kill()
                finally:
                    broker.close()
        finally:
            self.etcd.stop()
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> Cluster:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Cluster:
        import asyncio

        return await asyncio.to_thread(self.__enter__)

    async def __aexit__(self, *exc: object) -> None:
        import asyncio

        await asyncio.to_thread(self.close)


def _port() -> int:
    from moldau.testing.broker import _free_port

    return _free_port()
