"""A real Apache Kafka broker (KRaft, combined mode, one node) as a subprocess: the reference.

Theory of operation: Kafka is not vendored. :func:`ensure_jars` resolves
``org.apache.kafka:kafka_2.13`` (and log4j2, which the distribution adds) with Maven from
``tests/reference/maven/broker/pom.xml`` into a cache folder outside the repo,
``$MOLDAU_KAFKA_CACHE`` or ``~/.cache/moldau/kafka-<version>/libs``; a ``.complete`` file
marks a finished copy, so later calls cost nothing and never touch the network.

:class:`KafkaBroker` writes a ``server.properties`` for one node that is both broker and
controller, on two free loopback ports (clients, controller), formats the storage with
``kafka.tools.StorageTool`` (what ``kafka-storage.sh format`` runs) and starts
``kafka.Kafka server.properties`` with the JVM options ``kafka-server-start.sh`` uses.
Ready is "Kafka Server started" in its log and an answered ApiVersions on the client port;
``startup_s`` is spawn to ready (``format_s`` is the format step, apart). :meth:`stop` sends
SIGTERM (Kafka's controlled shutdown) and waits; only the PID this object started is ever
signalled. The work folder (data, log, properties) is removed by :meth:`dispose`.

Command line (what ``scripts/kafka-reference`` calls)::

    python tests/reference/kafka_process.py fetch            # resolve the jars, print the folder
    python tests/reference/kafka_process.py run [--port N]   # one broker until Ctrl-C
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
POM = HERE / "maven" / "broker" / "pom.xml"
DEFAULT_VERSION = os.environ.get("MOLDAU_KAFKA_VERSION", "4.2.1")
READY_MARKER = "Kafka Server started"
START_TIMEOUT = float(os.environ.get("MOLDAU_KAFKA_START_TIMEOUT", "120"))
STOP_TIMEOUT = 60.0
#: kafka-server-start.sh's heap and KAFKA_JVM_PERFORMANCE_OPTS
JVM_OPTS = ["-Xms1g", "-Xmx1g", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
            "-Djava.awt.headless=true"]
LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
logger.kafka.name = kafka
logger.kafka.level = info
logger.state.name = state.change.logger
logger.state.level = warn
"""


class KafkaUnavailable(RuntimeError):
    """Java or Maven is missing, or the jars could not be resolved."""


def cache_root(version: str) -> Path:
    base = os.environ.get("MOLDAU_KAFKA_CACHE")
    root = Path(base) if base else Path.home() / ".cache" / "moldau"
    return root / f"kafka-{version}"


def tools_available() -> str | None:
    """None if java and mvn are on PATH, else what is missing (for a skip reason)."""
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    return f"{' and '.join(missing)} not on PATH" if missing else None


def maven_copy(pom: Path, dest: Path, properties: dict[str, str] | None = None, timeout: float = 900) -> Path:
    """``mvn dependency:copy-dependencies`` of ``pom`` into ``dest`` (once: a ``.complete``
    file marks a finished copy; a half-finished one is redone). Shared by the broker jars
    and the Java client projects under tests/reference/maven/."""
    if (dest / ".complete").exists():
        return dest
    if shutil.which("mvn") is None:
        raise KafkaUnavailable("mvn not on PATH")
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    cmd = ["mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies", "-DincludeScope=runtime",
           f"-DoutputDirectory={partial}"]
    cmd += [f"-D{key}={value}" for key, value in (properties or {}).items()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0 or not any(partial.glob("*.jar")):
        raise KafkaUnavailable(f"maven could not resolve {pom}: {(out.stdout + out.stderr)[-2000:]}")
    (partial / ".complete").write_text(" ".join(cmd) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    partial.rename(dest)
    return dest


def ensure_jars(version: str = DEFAULT_VERSION) -> Path:
    """The folder of Kafka ``version``'s broker jars, resolved with Maven on first use."""
    return maven_copy(POM, cache_root(version) / "libs", {"kafka.version": version})


def free_port() -> int:
    """A free loopback port outside the ephemeral range (as the integration tests pick)."""
    sys.path.insert(0, str(HERE.parent / "integration"))
    try:
        from broker_process import free_port as pick
    finally:
        sys.path.pop(0)
    return pick()


def kafka_uuid() -> str:
    """A cluster id in Kafka's form: 16 random bytes, URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def answers_api_versions(host: str, port: int, timeout: float = 1.0) -> bool:
    """One ApiVersions v0 round trip on a fresh connection (True if answered without error)."""
    frame = struct.pack(">hhih", 18, 0, 1, 3) + b"ref"
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(frame)) + frame)
            head = b""
            while len(head) < 10:
                chunk = sock.recv(10 - len(head))
                if not chunk:
                    return False
                head += chunk
            _size, correlation, error = struct.unpack(">iih", head)
            return correlation == 1 and error == 0
    except OSError:
        return False


class KafkaBroker:
    """One Apache Kafka node (broker and controller) on loopback ports chosen at run time."""

    def __init__(self, settings: dict[str, object] | None = None, version: str = DEFAULT_VERSION,
                 port: int | None = None, heap: str | None = None) -> None:
        self.version = version
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.controller_port = free_port()
        self.settings = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in (settings or {}).items()}
        self.heap = heap
        self.work_dir = Path(tempfile.mkdtemp(prefix="moldau-kafka-ref-"))
        self.data_dir = self.work_dir / "data"
        self.log_path = self.work_dir / "server.log"
        self.proc: subprocess.Popen | None = None
        self.startup_s: float | None = None
        self.format_s: float | None = None
        self.libs: Path | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def properties(self) -> dict[str, str]:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            # one node: the internal topics cannot have three replicas
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # tests should not wait 3 s for the first rebalance (as Moldau's test brokers)
            "group.initial.rebalance.delay.ms": "0",
        }
        props.update(self.settings)
        return props

    def _java(self, main: str, *args: str, jvm: list[str] | None = None) -> list[str]:
        assert self.libs is not None
        return ["java", *(jvm or []), f"-Dlog4j2.configurationFile={self.work_dir / 'log4j2.properties'}",
                "-cp", str(self.libs / "*"), main, *args]

    def start(self) -> None:
        """Resolve the jars (first use), format the storage and start; bounded waits."""
        missing = tools_available()
        if missing:
            raise KafkaUnavailable(missing)
        self.libs = ensure_jars(self.version)
        props = self.work_dir / "server.properties"
        props.write_text("".join(f"{k}={v}\n" for k, v in self.properties().items()))
        (self.work_dir / "log4j2.properties").write_text(LOG4J2)
        if not (self.data_dir / "meta.properties").exists():
            t0 = time.perf_counter()
            fmt = subprocess.run(self._java("kafka.tools.StorageTool", "format", "-t", kafka_uuid(),
                                            "-c", str(props), jvm=["-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]),
                                 capture_output=True, text=True, timeout=120)
            self.format_s = time.perf_counter() - t0
            if fmt.returncode != 0:
                raise KafkaUnavailable(f"kafka-storage format failed: {fmt.stdout}{fmt.stderr}")
        jvm = list(JVM_OPTS)
        if self.heap:
            jvm = [o for o in jvm if not o.startswith(("-Xms", "-Xmx"))] + [f"-Xms{self.heap}", f"-Xmx{self.heap}"]
        with open(self.log_path, "ab") as log:
            t0 = time.perf_counter()
            self.proc = subprocess.Popen(self._java("kafka.Kafka", str(props), jvm=jvm), stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise KafkaUnavailable(f"kafka exited with {self.proc.returncode}:\n{self.log_tail()}")
            if READY_MARKER in self.log_path.read_text(errors="replace") and answers_api_versions(self.host,
                                                                                                   self.port):
                self.startup_s = time.perf_counter() - t0
                return
            time.sleep(0.05)
        self.stop()
        raise KafkaUnavailable(f"kafka not ready within {START_TIMEOUT:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM (controlled shutdown), then SIGKILL past the bound; our PID only."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def dispose(self) -> None:
        self.stop()
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> KafkaBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["fetch", "run"])
    ap.add_argument("--version", default=DEFAULT_VERSION, help=f"Kafka version (default {DEFAULT_VERSION})")
    ap.add_argument("--port", type=int, help="client port (default: a free one)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra server property")
    args = ap.parse_args()
    if args.command == "fetch":
        t0 = time.perf_counter()
        print(ensure_jars(args.version), f"({time.perf_counter() - t0:.1f} s)")
        return
    settings = dict(kv.split("=", 1) for kv in args.set)
    broker = KafkaBroker(settings, args.version, port=args.port)
    try:
        broker.start()
        print(f"kafka {args.version} listening on {broker.bootstrap} (pid {broker.pid}); "
              f"format {broker.format_s:.1f} s, start {broker.startup_s:.1f} s; log {broker.log_path}; "
              "Ctrl-C stops it", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while broker.proc is not None and broker.proc.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        t0 = time.perf_counter()
        broker.dispose()
        print(f"kafka stopped in {time.perf_counter() - t0:.1f} s", flush=True)


if __name__ == "__main__":
    main()
