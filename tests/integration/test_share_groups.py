"""Share groups (KIP-932) with confluent-kafka's ShareConsumer (librdkafka's share consumer).

One broker per module with a short acquisition lock (3 s) and a delivery-count limit
of 3; each test has its own topic and group. Share consumers run as subprocesses
(tests/integration/share_worker.py) under an interpreter with confluent-kafka >= 2.16
(``.venv-share``, made by scripts/test; quixstreams pins the test venv's below 2.13).
Cost: about 65 s on 2 busy cores (one kill -9 test has its own broker).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer

from . import raw_kafka as raw
from .kafka_helpers import create_topic, unique_topic, wait_until, watermarks

LOCK_MS = 3000
DELIVERY_LIMIT = 3
ROOT = Path(__file__).resolve().parents[2]


def share_python() -> str:
    """An interpreter whose confluent-kafka has ShareConsumer, or skip."""
    candidate = os.environ.get("MOLDAU_SHARE_PYTHON") or str(ROOT / ".venv-share" / "bin" / "python")
    if not Path(candidate).exists():
        pytest.skip(f"no interpreter with confluent-kafka >= 2.16 at {candidate} (scripts/test makes .venv-share)")
    probe = subprocess.run([candidate, "-c", "from confluent_kafka import ShareConsumer"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"{candidate} has no confluent_kafka.ShareConsumer")
    return candidate


class Worker:
    """One share_worker.py process; its JSON lines collected by a thread."""

    def __init__(self, bootstrap: str, group: str, topic: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [share_python(), str(Path(__file__).with_name("share_worker.py")), bootstrap, group, topic, *args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self.lines: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.lines.append(json.loads(line))

    @property
    def records(self) -> list[dict]:
        return [r for r in list(self.lines) if "o" in r]

    def accepted(self) -> list[int]:
        return [r["o"] for r in self.records if r["a"] == "accept" and r["ok"]]

    def wait(self, timeout: float = 60.0) -> None:
        self.proc.wait(timeout)
        self._reader.join(5)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def done(self) -> bool:
        return any(r.get("event") == "done" for r in list(self.lines))


@pytest.fixture(scope="module")
def sb():
    from .conftest import _dispose, _new_broker

    b = _new_broker({"group.share.record.lock.duration.ms": LOCK_MS,
                     "group.share.delivery.count.limit": DELIVERY_LIMIT}, "share")
    yield b
    _dispose(b)


@pytest.fixture
def workers():
    made: list[Worker] = []
    yield made
    for w in made:
        w.kill()


def _produce(bootstrap: str, topic: str, count: int) -> None:
    # batches of ~150 records: a share fetch acquires whole batches, as Kafka's does
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 16384, "log_level": 3})
    for i in range(count):
        p.produce(topic, value=b"%08d" % i + b"x" * 92, partition=0)
        if i % 10000 == 9999:
            p.poll(0)
    assert p.flush(30) == 0


def _synced(bootstrap: str, topic: str, workers: list[Worker]) -> int:
    """Produce one-record sentinels until some member got one, so the share-partition is
    initialized (share.auto.offset.reset=latest); the offset the payload starts at."""
    def got_one() -> bool:
        if any(w.records for w in workers):
            return True
        _produce(bootstrap, topic, 1)
        return False
    wait_until(got_one, timeout=30, interval=1.0)
    return watermarks(bootstrap, topic)[1]


def test_three_share_consumers_split_records_each_accepted_once(sb, workers):
    topic, group = unique_topic("split"), "g-split"
    create_topic(sb.bootstrap, topic, 1)
    workers += [Worker(sb.bootstrap, group, topic, "--idle", "3") for _ in range(3)]
    start = _synced(sb.bootstrap, topic, workers)
    _produce(sb.bootstrap, topic, 10_000)
    for w in workers:
        w.wait(60)
    accepted = [o for w in workers for o in w.accepted() if o >= start]
    assert len(accepted) == len(set(accepted)), "a record was accepted twice"
    assert set(accepted) == set(range(start, start + 10_000))
    per_worker = [len([o for o in w.accepted() if o >= start]) for w in workers]
    assert sum(1 for n in per_worker if n > 0) >= 2, f"records not shared: {per_worker}"


def test_released_record_is_delivered_again(sb, workers):
    topic, group = unique_topic("release"), "g-release"
    create_topic(sb.bootstrap, topic, 1)
    w = Worker(sb.bootstrap, group, topic, "--idle", "4")
    workers.append(w)
    start = _synced(sb.bootstrap, topic, workers)
    w.kill()
    target = start + 3
    w = Worker(sb.bootstrap, group, topic, "--idle", "4", "--release-first", str(target))
    workers.append(w)
    _produce(sb.bootstrap, topic, 10)
    w.wait(60)
    deliveries = [(r["d"], r["a"]) for r in w.records if r["o"] == target]
    assert deliveries[0] == (1, "release")
    assert (2, "accept") in deliveries
    assert set(w.accepted()) >= set(range(start, start + 10))


def test_rejected_and_poison_records_are_not_delivered_again(sb, workers):
    topic, group = unique_topic("reject"), "g-reject"
    create_topic(sb.bootstrap, topic, 1)
    w = Worker(sb.bootstrap, group, topic, "--idle", "5")
    workers.append(w)
    start = _synced(sb.bootstrap, topic, workers)
    w.kill()
    rejected, poison = start + 1, start + 2
    w = Worker(sb.bootstrap, group, topic, "--idle", "3", "--reject", str(rejected), "--release-always", str(poison))
    workers.append(w)
    _produce(sb.bootstrap, topic, 10)
    w.wait(60)
    assert [r["d"] for r in w.records if r["o"] == rejected] == [1]
    # released at every delivery: archived once it reached the delivery-count limit
    assert [r["d"] for r in w.records if r["o"] == poison] == list(range(1, DELIVERY_LIMIT + 1))
    assert set(w.accepted()) == set(range(start, start + 10)) - {rejected, poison}


def test_killed_consumer_records_go_to_the_others_after_the_lock(sb, workers):
    topic, group = unique_topic("killed"), "g-killed"
    create_topic(sb.bootstrap, topic, 1)
    syncer = Worker(sb.bootstrap, group, topic, "--idle", "30")
    workers.append(syncer)
    start = _synced(sb.bootstrap, topic, workers)
    syncer.kill()
    holder = Worker(sb.bootstrap, group, topic, "--hold", "--idle", "60")
    workers.append(holder)
    _produce(sb.bootstrap, topic, 50)
    wait_until(lambda: any(r["o"] >= start for r in holder.records), timeout=30)
    holder.kill()  # SIGKILL: no acknowledgement, no leave
    killed_at = time.monotonic()
    held = {r["o"] for r in holder.records if r["o"] >= start}
    other = Worker(sb.bootstrap, group, topic, "--idle", "4")
    workers.append(other)
    wait_until(lambda: set(other.accepted()) >= held, timeout=30)
    first_redelivery = time.monotonic() - killed_at
    other.wait(60)
    counts = {r["o"]: r["d"] for r in other.records}
    assert all(counts[o] == 2 for o in held), "held records come back with their second delivery"
    assert set(other.accepted()) >= set(range(start, start + 50))
    assert first_redelivery >= LOCK_MS / 1000 - 1.0


def test_state_survives_kill9_of_the_broker(make_broker, workers):
    b = make_broker(**{"group.share.record.lock.duration.ms": LOCK_MS})
    topic, group = unique_topic("kill9"), "g-kill9"
    create_topic(b.bootstrap, topic, 1)
    first = Worker(b.bootstrap, group, topic, "--idle", "3")
    workers.append(first)
    start = _synced(b.bootstrap, topic, workers)
    _produce(b.bootstrap, topic, 20)
    first.wait(60)
    assert set(first.accepted()) >= set(range(start, start + 20))
    holder = Worker(b.bootstrap, group, topic, "--hold", "--idle", "60")
    workers.append(holder)
    _produce(b.bootstrap, topic, 10)
    wait_until(lambda: any(r["o"] >= start + 20 for r in holder.records), timeout=30)
    held = {r["o"] for r in holder.records}
    b.kill9()
    holder.kill()
    b.restart()
    after = Worker(b.bootstrap, group, topic, "--idle", "4")
    workers.append(after)
    after.wait(60)
    got = {r["o"]: r["d"] for r in after.records}
    assert not [o for o in got if o < start + 20], "accepted records delivered again after kill -9"
    assert set(after.accepted()) == set(range(start + 20, start + 30))
    assert all(got[o] == 2 for o in held), "the delivery count survives too"


def _set_group_configs(bootstrap: str, group: str, **values: str) -> None:
    from confluent_kafka.admin import (
        AdminClient,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        ResourceType,
    )

    admin = AdminClient({"bootstrap.servers": bootstrap})
    entries = [ConfigEntry(k.replace("_", "."), v, incremental_operation=AlterConfigOpType.SET) for k, v in values.items()]
    futures = admin.incremental_alter_configs([ConfigResource(ResourceType.GROUP, group, incremental_configs=entries)])
    for f in futures.values():
        f.result(15)


def test_group_configs_earliest_reset_and_lock_duration(sb, workers):
    from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, ResourceType

    topic, group = unique_topic("earliest"), "g-earliest"
    create_topic(sb.bootstrap, topic, 1)
    _produce(sb.bootstrap, topic, 5)  # before the group exists
    _set_group_configs(sb.bootstrap, group, share_auto_offset_reset="earliest", share_record_lock_duration_ms="5000")
    admin = AdminClient({"bootstrap.servers": sb.bootstrap})
    resource = ConfigResource(ResourceType.GROUP, group)
    described = admin.describe_configs([resource])[resource].result(15)
    assert described["share.auto.offset.reset"].value == "earliest"
    assert described["share.auto.offset.reset"].source == ConfigSource.GROUP_CONFIG.value
    assert described["share.record.lock.duration.ms"].value == "5000"
    assert described["share.delivery.count.limit"].source == ConfigSource.DEFAULT_CONFIG.value
    with pytest.raises(Exception, match="share.delivery.count.limit"):
        _set_group_configs(sb.bootstrap, group, share_delivery_count_limit="1")
    w = Worker(sb.bootstrap, group, topic, "--idle", "3")
    workers.append(w)
    w.wait(60)
    assert sorted(w.accepted()) == [0, 1, 2, 3, 4]


def _share_group_describe(bootstrap: str, group: str) -> tuple[int, str, list[str]]:
    """ShareGroupDescribe v1 by hand: (error, state, member ids)."""
    body = raw.uvarint(2) + raw.compact_string(group) + b"\x00" + raw.uvarint(0)
    with raw.connect(bootstrap) as s:
        s.sendall(raw.request(77, 1, 7, body, flexible=True))
        answer = raw.read_response(s)
    assert answer is not None
    r = raw.Reader(answer[1])
    r.skip_tagged_fields()  # response header v1
    r.i32()  # throttle
    assert r.uvarint() == 2
    error = r.i16()

    def cstr() -> str | None:
        n = r.uvarint()
        return None if n == 0 else r.take(n - 1).decode()

    cstr()  # error message
    assert cstr() == group
    state = cstr() or ""
    r.i32(), r.i32()  # group epoch, assignment epoch
    cstr()  # assignor
    members = []
    for _ in range(r.uvarint() - 1):
        members.append(cstr() or "")
        cstr()  # rack
        r.i32()
        cstr(), cstr()  # client id, host
        for _ in range(r.uvarint() - 1):
            cstr()
        for _ in range(r.uvarint() - 1):  # assignment topics
            r.take(16)
            cstr()
            r.take(4 * (r.uvarint() - 1))
            r.skip_tagged_fields()
        r.skip_tagged_fields()  # assignment
        r.skip_tagged_fields()  # member
    return error, state, members


def test_share_group_is_described_and_listed(sb, workers):
    topic, group = unique_topic("describe"), "g-describe"
    create_topic(sb.bootstrap, topic, 1)
    workers += [Worker(sb.bootstrap, group, topic, "--idle", "30") for _ in range(2)]
    assert wait_until(lambda: len(_share_group_describe(sb.bootstrap, group)[2]) == 2, timeout=30)
    error, state, members = _share_group_describe(sb.bootstrap, group)
    assert (error, state) == (0, "Stable")
    assert _share_group_describe(sb.bootstrap, "no-such-group")[0] == 69
    # the id is a share group's: a consumer-protocol or classic member is told it is not
    # theirs (Kafka: GroupIdNotFoundException), and nothing of the share group changes
    from moldau.handlers.registry import codec_for
    from moldau.protocol.messages import ALL_APIS

    from .cluster_helpers import raw_request

    heartbeat = codec_for(ALL_APIS[68])
    answer = raw_request(sb, ALL_APIS[68], 0, heartbeat.Request(
        group_id=group, member_id="m-1", member_epoch=0, rebalance_timeout_ms=30000,
        subscribed_topic_names=[topic], topic_partitions=[]))
    assert answer.error_code == 69, answer
    commit = codec_for(ALL_APIS[8])
    Topic = commit.Request.of("topics")
    Partition = Topic.of("partitions")
    committed = raw_request(sb, ALL_APIS[8], 8, commit.Request(
        group_id=group, generation_id_or_member_epoch=-1, member_id="", topics=[
            Topic(name=topic, partitions=[Partition(partition_index=0, committed_offset=1, committed_metadata="")])]))
    assert committed.topics[0].partitions[0].error_code == 69
    assert _share_group_describe(sb.bootstrap, group)[:2] == (0, "Stable")
    assert "Traceback" not in sb.log_text()


# -- share-group offsets by hand (confluent-kafka 2.16's AdminClient has no such calls) --

def _call(bootstrap: str, api: int, body: bytes) -> raw.Reader:
    with raw.connect(bootstrap) as s:
        s.sendall(raw.request(api, 0, 9, body, flexible=True))
        answer = raw.read_response(s)
    assert answer is not None
    r = raw.Reader(answer[1])
    r.skip_tagged_fields()  # response header v1
    r.i32()  # throttle
    return r


def _cstr(r: raw.Reader) -> str | None:
    n = r.uvarint()
    return None if n == 0 else r.take(n - 1).decode()


def _describe_offsets(bootstrap: str, group: str, topic: str) -> tuple[int, dict[int, tuple[int, int]]]:
    body = (raw.uvarint(2) + raw.compact_string(group) + raw.uvarint(2) + raw.compact_string(topic)
            + raw.uvarint(2) + raw.i32(0) + raw.uvarint(0) + raw.uvarint(0) + raw.uvarint(0))
    r = _call(bootstrap, 90, body)
    assert r.uvarint() == 2
    assert _cstr(r) == group
    result = {}
    for _ in range(r.uvarint() - 1):
        _cstr(r)
        r.take(16)
        for _ in range(r.uvarint() - 1):
            index, start, _epoch, error = r.i32(), r.i64(), r.i32(), r.i16()
            _cstr(r)
            r.skip_tagged_fields()
            result[index] = (start, error)
        r.skip_tagged_fields()
    return r.i16(), result


def _alter_offsets(bootstrap: str, group: str, topic: str, offset: int) -> int:
    body = (raw.compact_string(group) + raw.uvarint(2) + raw.compact_string(topic) + raw.uvarint(2)
            + raw.i32(0) + raw.i64(offset) + raw.uvarint(0) + raw.uvarint(0) + raw.uvarint(0))
    r = _call(bootstrap, 91, body)
    top = r.i16()
    _cstr(r)
    if top:
        return top
    assert r.uvarint() == 2
    _cstr(r)
    r.take(16)
    assert r.uvarint() == 2
    r.i32()
    return r.i16()


def _delete_offsets(bootstrap: str, group: str, topic: str) -> int:
    body = raw.compact_string(group) + raw.uvarint(2) + raw.compact_string(topic) + raw.uvarint(0) + raw.uvarint(0)
    return _call(bootstrap, 92, body).i16()


def test_share_group_offsets_alter_delete_and_delete_group(sb, workers):
    from confluent_kafka.admin import AdminClient

    topic, group = unique_topic("offsets"), "g-offsets"
    create_topic(sb.bootstrap, topic, 1)
    _produce(sb.bootstrap, topic, 10)
    _set_group_configs(sb.bootstrap, group, share_auto_offset_reset="earliest")
    w = Worker(sb.bootstrap, group, topic, "--idle", "3")
    workers.append(w)
    w.wait(60)
    assert sorted(w.accepted()) == list(range(10))
    assert _describe_offsets(sb.bootstrap, group, topic) == (0, {0: (10, 0)})
    # the worker closed (left the group): the group is empty, its offsets can move
    assert wait_until(lambda: _alter_offsets(sb.bootstrap, group, topic, 6) == 0, timeout=20)
    assert _describe_offsets(sb.bootstrap, group, topic) == (0, {0: (6, 0)})
    again = Worker(sb.bootstrap, group, topic, "--idle", "3")
    workers.append(again)
    again.wait(60)
    assert sorted(again.accepted()) == [6, 7, 8, 9]
    assert wait_until(lambda: _delete_offsets(sb.bootstrap, group, topic) == 0, timeout=20)
    assert _describe_offsets(sb.bootstrap, group, topic) == (0, {0: (-1, 0)})
    admin = AdminClient({"bootstrap.servers": sb.bootstrap})
    admin.delete_consumer_groups([group], request_timeout=10)[group].result(15)
    assert _share_group_describe(sb.bootstrap, group)[0] == 69  # GROUP_ID_NOT_FOUND
