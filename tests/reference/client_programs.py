"""The Java and Go client programs of the reference tests, built on first use into a cache.

- Java (tests/reference/java/*.java): kafka-clients and kafka-streams are resolved with
  Maven from tests/reference/maven/clients/pom.xml into ``<cache>/kafka-<version>/clients``
  (:func:`kafka_process.maven_copy`); each program runs with Java's source launcher,
  ``java -cp '<jars>/*' Program.java args``, so there is no build step of ours.
- Go (tests/reference/go): franz-go from the Go module proxy (go.sum pins it), built with
  ``go build`` into ``<cache>/go-client/<hash of the sources>/goclient``; a changed source
  builds a new binary, an unchanged one is reused.

Each program prints ``OK ...`` per step and ``FAIL ...`` then exits 1 on the first failure.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from .kafka_process import DEFAULT_VERSION, HERE, KafkaUnavailable, cache_root, maven_copy

JAVA_DIR = HERE / "java"
GO_DIR = HERE / "go"
CLIENTS_POM = HERE / "maven" / "clients" / "pom.xml"


def java_classpath(version: str = DEFAULT_VERSION) -> str:
    if shutil.which("java") is None:
        raise KafkaUnavailable("java not on PATH")
    jars = maven_copy(CLIENTS_POM, cache_root(version) / "clients", {"kafka.version": version})
    return str(jars / "*")


def go_client() -> Path:
    """The franz-go program, built once per version of its sources."""
    if shutil.which("go") is None:
        raise KafkaUnavailable("go not on PATH")
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update((GO_DIR / name).read_bytes())
    base = Path(os.environ.get("MOLDAU_KAFKA_CACHE") or Path.home() / ".cache" / "moldau")
    binary = base / "go-client" / digest.hexdigest()[:16] / "goclient"
    if not binary.exists():
        binary.parent.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(["go", "build", "-o", str(binary) + ".partial", "."], cwd=GO_DIR,
                             capture_output=True, text=True, timeout=900)
        if out.returncode != 0:
            raise KafkaUnavailable(f"go build failed: {out.stderr[-2000:]}")
        os.replace(str(binary) + ".partial", binary)
    return binary


def run_program(cmd: list[str], timeout: float = 180) -> tuple[int, list[str], str]:
    """(exit code, the OK/FAIL lines, the rest of the output's tail)."""
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith(("OK", "FAIL"))]
    return out.returncode, lines, (out.stdout + out.stderr)[-4000:]
