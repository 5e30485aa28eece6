"""The clients most of Kafka's users run, against Moldau: the Java client (classic and
KIP-848 groups, idempotence, transactions, read_committed), a Kafka Streams word count
with exactly_once_v2 (a changelog and a repartition topic, transactions under the hood),
and franz-go (Go) producing and consuming in a group. Each program is also run against
Apache Kafka with ``MOLDAU_REFERENCE_BROKERS=moldau,kafka``, which shows the programs
themselves are right.

Cost, once built: about 40 s against Moldau on a loaded 2-core machine (the Java source
launcher compiles each program, ~5 s). First use resolves the Java jars with Maven
(~1 min) and builds the Go program (~2 min). Gated by MOLDAU_REFERENCE=1.
"""

from __future__ import annotations

import os
import tempfile
import uuid

import pytest

from .client_programs import JAVA_DIR, go_client, java_classpath, run_program
from .kafka_process import KafkaUnavailable

TARGETS = [t.strip() for t in os.environ.get("MOLDAU_REFERENCE_BROKERS", "moldau").split(",") if t.strip()]


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest) -> str:
    """The bootstrap address of the broker under test (moldau, or kafka when asked)."""
    return request.getfixturevalue(request.param).bootstrap


@pytest.fixture(scope="module")
def classpath() -> str:
    try:
        return java_classpath()
    except KafkaUnavailable as exc:
        pytest.skip(str(exc))


def _check(code: int, lines: list[str], tail: str, want: list[str]) -> None:
    assert code == 0, f"exit {code}:\n" + "\n".join(lines) + "\n" + tail
    for prefix in want:
        assert any(ln.startswith(prefix) for ln in lines), f"no {prefix!r} in {lines}\n{tail}"


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_java_client(target: str, classpath: str, protocol: str) -> None:
    topic = f"java-{protocol}-{uuid.uuid4().hex[:6]}"
    code, lines, tail = run_program(["java", "-cp", classpath, str(JAVA_DIR / "JavaClientCheck.java"), target,
                                     topic, protocol])
    _check(code, lines, tail, ["OK produced 200", f"OK group {protocol} read 200, committed 200",
                               "OK transaction committed 50, aborted 50", "OK read_committed saw 250"])


def test_kafka_streams_exactly_once(target: str, classpath: str) -> None:
    with tempfile.TemporaryDirectory(prefix="moldau-streams-") as state_dir:
        app = f"wc-{uuid.uuid4().hex[:6]}"
        code, lines, tail = run_program(["java", "-cp", classpath, str(JAVA_DIR / "WordCountEos.java"), target,
                                         app, state_dir])
    _check(code, lines, tail, ["OK streams running", "OK word counts {a=2, and=1, brown=1, dog=2, fox=3",
                               "OK changelog and repartition topics"])


def test_go_client_franz(target: str) -> None:
    try:
        binary = go_client()
    except KafkaUnavailable as exc:
        pytest.skip(str(exc))
    suffix = uuid.uuid4().hex[:6]
    code, lines, tail = run_program([str(binary), "-bootstrap", target, "-topic", f"go-{suffix}",
                                     "-group", f"go-g-{suffix}"])
    _check(code, lines, tail, ["OK produced 300", "OK consumed 300", "OK committed 300 group state Empty"])
