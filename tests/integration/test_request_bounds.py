"""No single request, however large, can stall the broker or make it do unbounded work.

Each test sends one of the reproducers of issue 8 (item 3) as a raw frame, while a probe
client on another connection sends ApiVersions every 10 ms and records how long each
answer took. The big request must be refused at once (CreateTopics/CreatePartitions past
Kafka's per-request record cap, or past ``moldau.max.broker.partitions``; an OffsetCommit
larger than one batch of ``__consumer_offsets``) or answered without the probe ever
waiting long. Bounds are generous: the machine is shared.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from confluent_kafka.admin import NewPartitions, NewTopic

from . import raw_kafka as raw
from .kafka_helpers import UNKNOWN_TOPIC_OR_PARTITION, admin_client, create_topic, roundtrip_ok

pytestmark = pytest.mark.timeout(180)

UNKNOWN_SERVER_ERROR = -1
POLICY_VIOLATION = 44
INVALID_REQUEST = 42
EXCESSIVE = "Unable to perform excessively large batch operation."

API_FETCH = 1
API_LIST_OFFSETS = 2
API_OFFSET_COMMIT = 8
API_OFFSET_FETCH = 9
API_DESCRIBE_GROUPS = 15
API_CREATE_TOPICS = 19
API_DELETE_RECORDS = 21
API_DESCRIBE_CONFIGS = 32
API_CREATE_PARTITIONS = 37
API_DELETE_GROUPS = 42

#: The probe's worst answer while a big request is served must stay under this.
PROBE_BOUND_S = 1.0


# ------------------------------------------------------------------ request bodies
def array(items: list[bytes]) -> bytes:
    return raw.i32(len(items)) + b"".join(items)


def create_partitions_v0(topic: str, count: int, validate_only: bool = False) -> bytes:
    return array([raw.string(topic) + raw.i32(count) + raw.i32(-1)]) + raw.i32(30000) + raw.i8(validate_only)


def create_topics_v4(topics: list[tuple[str, int]], validate_only: bool = False) -> bytes:
    items = [raw.string(name) + raw.i32(n) + raw.i16(1) + raw.i32(0) + raw.i32(0) for name, n in topics]
    return array(items) + raw.i32(30000) + raw.i8(validate_only)


def metadata_v4(names: list[str], allow_auto: bool = False) -> bytes:
    return array([raw.string(n) for n in names]) + raw.i8(allow_auto)


def list_offsets_v1(topic: str, partitions: int) -> bytes:
    entry = b"".join(raw.i32(p % 4) + raw.i64(-1) for p in range(partitions))
    return raw.i32(-1) + raw.i32(1) + raw.string(topic) + raw.i32(partitions) + entry


def describe_groups_v0(groups: list[str]) -> bytes:
    return array([raw.string(g) for g in groups])


def offset_fetch_v1(group: str, topic: str, partitions: int) -> bytes:
    indexes = b"".join(raw.i32(p % 4) for p in range(partitions))
    return raw.string(group) + raw.i32(1) + raw.string(topic) + raw.i32(partitions) + indexes


def delete_records_v0(topic: str, partitions: int) -> bytes:
    entry = b"".join(raw.i32(p % 4) + raw.i64(0) for p in range(partitions))
    return raw.i32(1) + raw.string(topic) + raw.i32(partitions) + entry + raw.i32(30000)


def produce_v3_entries(topic: str, partitions: int) -> bytes:
    """A Produce request naming one partition index many times, each with null records."""
    entry = raw.i32(0) + raw.i32(-1)
    return raw.string(None) + raw.i16(1) + raw.i32(10000) + raw.i32(1) + raw.string(topic) + raw.i32(partitions) + entry * partitions


def fetch_v4(topic: str, partitions: int) -> bytes:
    """A Fetch (max_wait 0) naming ``partitions`` entries over 4 partitions."""
    entries = b"".join(raw.i32(p % 4) + raw.i64(0) + raw.i32(1024) for p in range(partitions))
    return (raw.i32(-1) + raw.i32(0) + raw.i32(1) + raw.i32(1 << 20) + raw.i8(0)
            + raw.i32(1) + raw.string(topic) + raw.i32(partitions) + entries)


def offset_commit_v2(group: str, topic: str, partitions: int) -> bytes:
    """A standalone commit (generation -1) of ``partitions`` entries over 4 partitions."""
    entries = b"".join(raw.i32(p % 4) + raw.i64(p) + raw.string("") for p in range(partitions))
    return (raw.string(group) + raw.i32(-1) + raw.string("") + raw.i64(-1)
            + raw.i32(1) + raw.string(topic) + raw.i32(partitions) + entries)


def parse_offset_commit_v2(data: bytes) -> list[int]:
    r = raw.Reader(data)
    codes = []
    for _ in range(r.i32()):
        r.string()
        for _ in range(r.i32()):
            r.i32()
            codes.append(r.i16())
    return codes


def describe_configs_v1(topic: str, copies: int) -> bytes:
    resource = raw.i8(2) + raw.string(topic) + raw.i32(-1)
    return raw.i32(copies) + resource * copies + raw.i8(0)


# ---------------------------------------------------------------- answers
def parse_create_topics_v4(data: bytes) -> dict[str, tuple[int, str | None]]:
    r = raw.Reader(data)
    r.i32()  # throttle
    return {r.string(): (r.i16(), r.string()) for _ in range(r.i32())}


def parse_create_partitions_v0(data: bytes) -> dict[str, tuple[int, str | None]]:
    r = raw.Reader(data)
    r.i32()  # throttle
    return {r.string(): (r.i16(), r.string()) for _ in range(r.i32())}


def parse_metadata_v4_topics(data: bytes) -> list[tuple[int, str]]:
    r = raw.Reader(data)
    r.i32()  # throttle
    for _ in range(r.i32()):
        r.i32(), r.string(), r.i32(), r.string()
    r.string(), r.i32()  # cluster id, controller id
    topics = []
    for _ in range(r.i32()):
        code, name = r.i16(), r.string()
        r.take(1)  # is_internal
        for _ in range(r.i32()):
            r.i16(), r.i32(), r.i32()
            for _ in range(2):  # replicas, isr
                for _ in range(r.i32()):
                    r.i32()
        topics.append((code, name))
    return topics


def array_length_after(data: bytes, skip: int) -> int:
    return raw.Reader(data[skip:]).i32()


# ---------------------------------------------------------------- the probe
class Probe:
    """Another client: ApiVersions every 10 ms on its own connection, latencies kept."""

    def __init__(self, bootstrap: str) -> None:
        self.sock = raw.connect(bootstrap, timeout=60)
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        frame = raw.request(raw.API_VERSIONS, 0, 1)
        try:
            while not self._stop.is_set():
                start = time.monotonic()
                self.sock.sendall(frame)
                assert raw.read_response(self.sock) is not None, "probe connection closed"
                self.latencies.append(time.monotonic() - start)
                self._stop.wait(0.01)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def __enter__(self) -> Probe:
        self._thread.start()
        time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(70)
        self.sock.close()

    @property
    def worst(self) -> float:
        assert self.error is None, f"probe failed: {self.error!r}"
        assert self.latencies, "the probe got no answer at all"
        return max(self.latencies)


def call(bootstrap: str, api_key: int, version: int, body: bytes, timeout: float = 120) -> tuple[bytes, float]:
    """Send one raw request; (response body, seconds to the answer)."""
    with raw.connect(bootstrap, timeout=timeout) as s:
        frame = raw.request(api_key, version, 42, body)
        start = time.monotonic()
        s.sendall(frame)
        resp = raw.read_response(s)
        elapsed = time.monotonic() - start
    assert resp is not None, "broker closed the connection instead of answering"
    assert resp[0] == 42
    return resp[1], elapsed


@contextmanager
def probing(bootstrap: str) -> Iterator[Probe]:
    with Probe(bootstrap) as probe:
        yield probe


def partition_dirs(broker, topic: str) -> list[str]:
    return [p.name for p in broker.data_dir.iterdir() if p.name.startswith(f"{topic}-")]


# ---------------------------------------------------------- CreatePartitions
def test_huge_create_partitions_is_refused_at_once(broker, topic):
    create_topic(broker.bootstrap, topic, partitions=1)
    with probing(broker.bootstrap) as probe:
        body, elapsed = call(broker.bootstrap, API_CREATE_PARTITIONS, 0, create_partitions_v0(topic, 8_388_608))
    assert parse_create_partitions_v0(body) == {topic: (POLICY_VIOLATION, EXCESSIVE)}
    assert elapsed < 1.0, f"answered after {elapsed:.2f}s"
    assert probe.worst < PROBE_BOUND_S
    assert partition_dirs(broker, topic) == [f"{topic}-0"]
    roundtrip_ok(broker.bootstrap)


def test_create_partitions_within_the_cap_still_works(broker, topic):
    create_topic(broker.bootstrap, topic, partitions=1)
    body, _ = call(broker.bootstrap, API_CREATE_PARTITIONS, 0, create_partitions_v0(topic, 2000))
    assert parse_create_partitions_v0(body) == {topic: (0, None)}
    assert len(partition_dirs(broker, topic)) == 2000


def test_create_partitions_validate_only_is_bounded_too(broker, topic):
    create_topic(broker.bootstrap, topic, partitions=1)
    body, elapsed = call(broker.bootstrap, API_CREATE_PARTITIONS, 0, create_partitions_v0(topic, 2**31 - 1, True))
    assert parse_create_partitions_v0(body) == {topic: (POLICY_VIOLATION, EXCESSIVE)}
    assert elapsed < 1.0


# --------------------------------------------------------------- CreateTopics
def test_create_topics_of_20000_partitions_is_refused(broker, topic):
    with probing(broker.bootstrap) as probe:
        body, elapsed = call(broker.bootstrap, API_CREATE_TOPICS, 4, create_topics_v4([(topic, 20_000)]))
    assert parse_create_topics_v4(body) == {topic: (POLICY_VIOLATION, EXCESSIVE)}
    assert elapsed < 1.0
    assert probe.worst < PROBE_BOUND_S
    assert partition_dirs(broker, topic) == []


def test_the_cap_counts_every_topic_of_a_request(broker, topic):
    """Kafka counts records for the whole request: 3 topics of 4,000 partitions are
    12,003 records, past the 10,000 cap, so none is created."""
    names = [f"{topic}-{i}" for i in range(3)]
    body, _ = call(broker.bootstrap, API_CREATE_TOPICS, 4, create_topics_v4([(n, 4000) for n in names]))
    assert parse_create_topics_v4(body) == {n: (POLICY_VIOLATION, EXCESSIVE) for n in names}
    assert all(partition_dirs(broker, n) == [] for n in names)


def test_the_largest_topic_kafka_allows_in_one_request(broker, topic):
    """One TopicRecord and 9,999 PartitionRecords: exactly Kafka's cap (checked with
    validate_only, which plans everything and creates nothing)."""
    body, _ = call(broker.bootstrap, API_CREATE_TOPICS, 4, create_topics_v4([(topic, 9999)], validate_only=True))
    assert parse_create_topics_v4(body) == {topic: (0, None)}
    body, _ = call(broker.bootstrap, API_CREATE_TOPICS, 4, create_topics_v4([(topic, 10_000)], validate_only=True))
    assert parse_create_topics_v4(body) == {topic: (POLICY_VIOLATION, EXCESSIVE)}
    assert partition_dirs(broker, topic) == []


def test_creating_thousands_of_partitions_does_not_stall_others(broker, topic):
    with probing(broker.bootstrap) as probe:
        body, elapsed = call(broker.bootstrap, API_CREATE_TOPICS, 4, create_topics_v4([(topic, 5000)]))
    assert parse_create_topics_v4(body) == {topic: (0, None)}
    assert len(partition_dirs(broker, topic)) == 5000
    assert probe.worst < PROBE_BOUND_S, f"probe waited {probe.worst:.2f}s (answer after {elapsed:.1f}s)"


def test_confluent_admin_sees_policy_violation(broker, topic):
    admin = admin_client(broker.bootstrap)
    futures = admin.create_topics([NewTopic(topic, num_partitions=20_000, replication_factor=1)], request_timeout=30)
    with pytest.raises(Exception) as raised:
        futures[topic].result(timeout=30)
    error = raised.value.args[0]
    assert error.code() == POLICY_VIOLATION and EXCESSIVE in error.str()
    assert partition_dirs(broker, topic) == []
    create_topic(broker.bootstrap, topic, partitions=3)
    futures = admin.create_partitions([NewPartitions(topic, 100_000)], request_timeout=30)
    with pytest.raises(Exception) as raised:
        futures[topic].result(timeout=30)
    assert raised.value.args[0].code() == POLICY_VIOLATION
    assert len(partition_dirs(broker, topic)) == 3


# ---------------------------------------------------- partitions per broker
def test_partitions_per_broker_are_bounded(make_broker, topic):
    broker = make_broker(**{"moldau.max.broker.partitions": 100})
    body, _ = call(broker.bootstrap, API_CREATE_TOPICS, 4, create_topics_v4([(topic, 60)]))
    assert parse_create_topics_v4(body) == {topic: (0, None)}
    body, _ = call(broker.bootstrap, API_CREATE_TOPICS, 4, create_topics_v4([(topic + "b", 41)]))
    code, message = parse_create_topics_v4(body)[topic + "b"]
    assert code == POLICY_VIOLATION and "moldau.max.broker.partitions" in message
    body, _ = call(broker.bootstrap, API_CREATE_PARTITIONS, 0, create_partitions_v0(topic, 101))
    code, message = parse_create_partitions_v0(body)[topic]
    assert code == POLICY_VIOLATION and "moldau.max.broker.partitions" in message
    body, _ = call(broker.bootstrap, API_CREATE_PARTITIONS, 0, create_partitions_v0(topic, 100))
    assert parse_create_partitions_v0(body) == {topic: (0, None)}
    assert len(partition_dirs(broker, topic)) == 100
    assert partition_dirs(broker, topic + "b") == []


# ------------------------------------------------- legitimate but huge arrays
def test_metadata_naming_one_topic_a_million_times(broker, topic):
    create_topic(broker.bootstrap, topic, partitions=2)
    request = metadata_v4([topic] * 1_000_000)
    with probing(broker.bootstrap) as probe:
        body, elapsed = call(broker.bootstrap, raw.API_METADATA, 4, request)
    assert parse_metadata_v4_topics(body) == [(0, topic)]  # Kafka answers each topic once
    assert elapsed < 20, f"answered after {elapsed:.1f}s"
    assert probe.worst < PROBE_BOUND_S, f"probe waited {probe.worst:.2f}s"


def test_metadata_naming_200000_missing_topics(broker, topic):
    request = metadata_v4([f"{topic}-{i}" for i in range(200_000)])
    with probing(broker.bootstrap) as probe:
        body, _ = call(broker.bootstrap, raw.API_METADATA, 4, request)
    topics = parse_metadata_v4_topics(body)
    assert len(topics) == 200_000 and {code for code, _ in topics} == {UNKNOWN_TOPIC_OR_PARTITION}
    assert probe.worst < PROBE_BOUND_S, f"probe waited {probe.worst:.2f}s"


@pytest.mark.parametrize(
    ("api_key", "version", "build"),
    [
        (API_LIST_OFFSETS, 1, lambda t: list_offsets_v1(t, 1_000_000)),
        (API_DESCRIBE_GROUPS, 0, lambda t: describe_groups_v0([f"g{i}" for i in range(1_000_000)])),
        (API_OFFSET_FETCH, 1, lambda t: offset_fetch_v1("g", t, 1_000_000)),
        (API_DELETE_RECORDS, 0, lambda t: delete_records_v0(t, 1_000_000)),
        (API_DESCRIBE_CONFIGS, 1, lambda t: describe_configs_v1(t, 20_000)),
        (raw.API_PRODUCE, 3, lambda t: produce_v3_entries(t, 1_000_000)),
        (API_DELETE_GROUPS, 0, lambda t: describe_groups_v0([f"g{i}" for i in range(1_000_000)])),
        (API_CREATE_TOPICS, 4, lambda t: create_topics_v4([(f"{t}-{i}", 0) for i in range(300_000)])),
        (API_FETCH, 4, lambda t: fetch_v4(t, 1_000_000)),
    ],
    ids=[
        "ListOffsets", "DescribeGroups", "OffsetFetch", "DeleteRecords", "DescribeConfigs", "Produce",
        "DeleteGroups", "CreateTopics", "Fetch",
    ],
)
def test_huge_arrays_do_not_stall_other_clients(shared_broker, topic, api_key, version, build):
    create_topic(shared_broker.bootstrap, topic, partitions=4)
    with probing(shared_broker.bootstrap) as probe:
        _, elapsed = call(shared_broker.bootstrap, api_key, version, build(topic))
    assert elapsed < 60, f"answered after {elapsed:.1f}s"
    assert probe.worst < PROBE_BOUND_S, f"probe waited {probe.worst:.2f}s (answer after {elapsed:.1f}s)"
    roundtrip_ok(shared_broker.bootstrap)


def test_an_offset_commit_larger_than_one_batch_is_refused(broker, topic):
    """Kafka writes a commit as one batch of __consumer_offsets and refuses one past the
    topic's max.message.bytes (RecordTooLargeException: UNKNOWN_SERVER_ERROR)."""
    create_topic(broker.bootstrap, topic, partitions=4)
    body, _ = call(broker.bootstrap, API_OFFSET_COMMIT, 2, offset_commit_v2("g", topic, 4))
    assert parse_offset_commit_v2(body) == [0, 0, 0, 0]
    with probing(broker.bootstrap) as probe:
        body, elapsed = call(broker.bootstrap, API_OFFSET_COMMIT, 2, offset_commit_v2("g", topic, 200_000))
    codes = parse_offset_commit_v2(body)
    assert len(codes) == 200_000 and set(codes) == {UNKNOWN_SERVER_ERROR}
    assert probe.worst < PROBE_BOUND_S, f"probe waited {probe.worst:.2f}s (answer after {elapsed:.1f}s)"


def test_list_offsets_answers_a_repeated_partition_once(shared_broker, topic):
    """Kafka's ReplicaManager keeps its answers in a map by partition: a partition named
    more than once is answered once, with INVALID_REQUEST; the others normally."""
    create_topic(shared_broker.bootstrap, topic, partitions=4)
    once = raw.i32(3) + raw.i64(-1)
    body = (raw.i32(-1) + raw.i32(1) + raw.string(topic) + raw.i32(100_001)
            + (raw.i32(0) + raw.i64(-1)) * 100_000 + once)
    answer, _ = call(shared_broker.bootstrap, API_LIST_OFFSETS, 1, body)
    r = raw.Reader(answer)
    assert r.i32() == 1 and r.string() == topic
    found = {}
    for _ in range(r.i32()):
        index, code = r.i32(), r.i16()
        r.i64(), r.i64()
        found[index] = code
    assert found == {0: INVALID_REQUEST, 3: 0}
