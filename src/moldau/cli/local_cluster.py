"""``moldau cluster``: a whole cluster on this machine, for trying it and for tests.

Theory of operation: one supervisor process starts an etcd member
(:class:`moldau.metastore.etcd_server.EtcdProcess`) and then N ``moldau serve
--broker-id I --cluster etcd://...`` processes, brokers 1..N on consecutive loopback
ports, each with its own data directory; it waits (bounded) until every broker's log
says it joined the cluster, prints the bootstrap address, and then only watches: a
broker that exits on its own is reported, the others keep running. On SIGINT or
SIGTERM it stops the brokers one after another with SIGTERM -- each a controlled
shutdown that hands its leaderships to brokers still running -- and etcd last, so
every broker can still reach the metadata while it hands over.

Layout of ``--data-dir`` (kept between runs, so a cluster restarted on the same folder
finds its topics again)::

    etcd/              etcd's data
    broker-<i>/        broker i's data directory
    logs/etcd.log      etcd's output
    logs/broker-<i>.log  broker i's output

The children run in sessions of their own: the Ctrl-C of a terminal reaches only the
supervisor, which then stops them in the order above. The supervisor signals only the
processes it started, by their PIDs.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from moldau.metastore.etcd_server import MISSING_ETCD, EtcdProcess, find_etcd, free_port

#: what a broker logs once it is registered in the cluster (moldau.broker.runner)
JOINED_MARKER = "joined cluster"
START_TIMEOUT_S = 60.0
#: a broker's controlled shutdown is bounded by controlled.shutdown.* (15 s by default)
STOP_TIMEOUT_S = 30.0


class ClusterError(RuntimeError):
    """The cluster could not be started (the message says which part and why)."""


@dataclass
class BrokerProcess:
    """One ``moldau serve`` child of the supervisor."""

    broker_id: int
    port: int
    data_dir: Path
    log_path: Path
    settings: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    _log_start: int = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, cluster_url: str, log_level: str) -> None:
        cmd = [
            sys.executable, "-m", "moldau", "serve",
            "--broker-id", str(self.broker_id),
            "--cluster", cluster_url,
            "--listen", self.bootstrap,
            "--data-dir", str(self.data_dir),
            "--log-level", log_level,
        ]
        for key, value in self.settings.items():
            cmd += ["--set", f"{key}={value}"]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== {' '.join(cmd)}\n".encode())
            log.flush()
            self._log_start = log.tell()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)

    def joined(self) -> bool:
        with open(self.log_path, "rb") as f:
            f.seek(self._log_start)
            return JOINED_MARKER.encode() in f.read()

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM (a controlled shutdown) and wait; SIGKILL after ``timeout``."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(timeout=10)
        return self.proc.returncode


class LocalCluster:
    """etcd plus ``brokers`` brokers under ``data_dir``; see the module docstring."""

    def __init__(self, brokers: int, data_dir: Path, port: int = 9092, etcd_port: int = 0,
                 settings: dict[str, str] | None = None, log_level: str = "INFO") -> None:
        binary = find_etcd()
        if binary is None:
            raise ClusterError(MISSING_ETCD)
        self.data_dir = Path(data_dir)
        self.log_level = log_level
        self.etcd = EtcdProcess(binary, self.data_dir / "etcd", self.data_dir / "logs" / "etcd.log",
                                client_port=etcd_port)
        # Kafka's default offsets.topic.replication.factor is 3; here at most the brokers there are
        defaults = {"offsets.topic.replication.factor": str(min(3, brokers))}
        merged = {**defaults, **(settings or {})}
        self.brokers = [
            BrokerProcess(i, port + i - 1 if port else free_port(), self.data_dir / f"broker-{i}",
                          self.data_dir / "logs" / f"broker-{i}.log", dict(merged))
            for i in range(1, brokers + 1)
        ]

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers)

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """etcd, then every broker at once; returns when all have joined. On failure
        everything started is stopped and ClusterError says what went wrong."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.etcd.start()
        except (RuntimeError, OSError) as exc:  # OSError: no such binary, not executable
            raise ClusterError(f"etcd ({self.etcd.binary}) did not start: {exc}") from None
        try:
            for b in self.brokers:
                b.start(self.etcd.url, self.log_level)
            deadline = time.monotonic() + timeout
            waiting = list(self.brokers)
            while waiting:
                for b in list(waiting):
                    if b.joined():
                        waiting.remove(b)
                    elif not b.is_running():
                        raise ClusterError(f"broker {b.broker_id} exited before joining "
                                           f"(log {b.log_path}):\n{b.log_tail()}")
                if waiting and time.monotonic() > deadline:
                    raise ClusterError(f"brokers {[b.broker_id for b in waiting]} did not join within "
                                       f"{timeout:.0f} s (logs in {self.data_dir / 'logs'})")
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise

    def stop(self, report: Callable[[str], None] | None = None) -> None:
        """Brokers one after another (each hands its leaderships to those still
        running), then etcd. Without etcd no handover can happen: then all brokers
        at once, each giving up its controlled shutdown after the bounded attempts."""
        if not self.etcd.is_running():
            for b in self.brokers:
                if b.is_running() and b.proc is not None:
                    b.proc.send_signal(signal.SIGTERM)
        for b in self.brokers:
            if b.is_running():
                began = time.monotonic()
                code = b.stop()
                if report is not None:
                    report(f"broker {b.broker_id} stopped (exit code {code}) in "
                           f"{(time.monotonic() - began) * 1000:.0f} ms")
        self.etcd.stop()
        if report is not None:
            report("etcd stopped")

    def dead_brokers(self) -> list[BrokerProcess]:
        return [b for b in self.brokers if b.proc is not None and not b.is_running()]


def run_local_cluster(cluster: LocalCluster, out: Callable[..., None] | None = None) -> int:
    """Start ``cluster``, print where it is (``out``: click.echo by default), serve
    until SIGINT/SIGTERM, stop it in order. Returns the exit code for the command."""
    if out is None:
        import click

        out = click.echo
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            cluster.start()
        except ClusterError as exc:
            out(f"moldau cluster: {exc}", err=True)
            return 1
        if stop.is_set():
            cluster.stop()
            return 0
        etcd_pid = cluster.etcd.proc.pid if cluster.etcd.proc else "?"
        out(f"etcd: {cluster.etcd.url} (pid {etcd_pid}, data in {cluster.etcd.data_dir})")
        for b in cluster.brokers:
            out(f"broker {b.broker_id}: {b.bootstrap} (pid {b.proc.pid if b.proc else '?'}, data in {b.data_dir})")
        out(f"logs: {cluster.data_dir / 'logs'}")
        out(f"bootstrap: {cluster.bootstrap}")
        out("Ctrl-C stops the cluster (brokers with controlled shutdown, then etcd)")
        reported: set[int] = set()
        while not stop.wait(0.5):
            for b in cluster.dead_brokers():
                if b.broker_id not in reported:
                    reported.add(b.broker_id)
                    out(f"broker {b.broker_id} exited with code {b.proc.returncode if b.proc else '?'} "
                        f"(log {b.log_path})", err=True)
            if not cluster.etcd.is_running():
                out(f"etcd exited (log {cluster.etcd.log_path}); stopping the brokers", err=True)
                break
        out("stopping the cluster")
        cluster.stop(report=out)
        return 0
    finally:
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)
