"""Group APIs at the wire level, with requests encoded by our codec and sent raw:
FindCoordinator in every version (KIP-699's batched form too), KIP-394's
MEMBER_ID_REQUIRED, Kafka's error codes for bad joins and heartbeats, OffsetFetch for
unknown groups, exact commit metadata, group.max.size, and the coordinator's
partition (Java's String.hashCode) visible in ``__consumer_offsets``."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest

from moldau.coordinator.group.hashing import partition_for
from moldau.protocol.codec import MessageCodec
from moldau.protocol.messages import ALL_APIS

from .conftest import _dispose, _new_broker
from .raw_kafka import connect, read_response, request, uvarint

pytestmark = pytest.mark.timeout(60)

NONE = 0
COORDINATOR_NOT_AVAILABLE = 15
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
REBALANCE_IN_PROGRESS = 27
GROUP_ID_NOT_FOUND = 69
MEMBER_ID_REQUIRED = 79
GROUP_MAX_SIZE_REACHED = 81
FENCED_INSTANCE_ID = 82

SETTINGS = {
    "group.initial.rebalance.delay.ms": 0,
    "group.min.session.timeout.ms": 500,
    "offsets.topic.num.partitions": 7,
    "group.max.size": 3,
}

_ids = itertools.count(1)


@pytest.fixture(scope="module")
def gbroker():
    b = _new_broker(SETTINGS, "groups-raw")
    yield b
    _dispose(b)


class Client:
    """One connection; encodes requests and decodes responses with Moldau's codec."""

    def __init__(self, bootstrap: str) -> None:
        self.sock = connect(bootstrap, timeout=20)

    def call(self, api_key: int, version: int, /, **fields: Any) -> Any:
        key = api_key
        api = ALL_APIS[key]
        codec = MessageCodec(api)
        body = codec.encode_request(version, codec.Request(**fields))
        flexible = api.is_flexible(version)
        cid = next(_ids)
        self.sock.sendall(request(key, version, cid, bytes(body), flexible=flexible))
        got = read_response(self.sock)
        assert got is not None, "broker closed the connection"
        corr, rest = got
        assert corr == cid
        pos = 0
        if flexible and key != 18:
            assert rest[0] == 0  # response header v1: no tagged fields
            pos = 1
        return codec.decode_response(version, rest, pos)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def client(gbroker):
    c = Client(gbroker.bootstrap)
    yield c
    c.close()


def protocols(topics: bytes = b"\x00\x00\x00\x00\x00\x00") -> list[Any]:
    Proto = MessageCodec(ALL_APIS[11]).Request.of("protocols")
    return [Proto(name="range", metadata=topics)]


def test_java_hash_placement():
    # Java: "group".hashCode() == 98629247, "".hashCode() == 0; non-BMP uses UTF-16.
    from moldau.coordinator.group.hashing import java_string_hash

    assert java_string_hash("group") == 98629247
    assert java_string_hash("") == 0
    assert java_string_hash("polygenelubricants") == -2**31  # Integer.MIN_VALUE
    assert partition_for("polygenelubricants", 50) == 0  # Utils.abs(MIN_VALUE) == 0
    assert java_string_hash("\U0001F600") == 0xD83D * 31 + 0xDE00  # the surrogate pair, not the code point


@pytest.mark.parametrize("version", range(0, 7))
def test_find_coordinator_every_version(gbroker, client, version):
    host, port = gbroker.bootstrap.rsplit(":", 1)
    if version >= 4:
        r = client.call(10, version, key_type=0, coordinator_keys=["a", "b", "c"])
        assert [c.key for c in r.coordinators] == ["a", "b", "c"]
        for c in r.coordinators:
            assert (c.error_code, c.node_id, c.host, c.port) == (NONE, 0, host, int(port))
    else:
        r = client.call(10, version, key="grp", key_type=0)
        assert (r.error_code, r.node_id, r.host, r.port) == (NONE, 0, host, int(port))


def test_find_transaction_coordinator(client):
    r = client.call(10, 4, key_type=1, coordinator_keys=["txn"])
    assert (r.coordinators[0].error_code, r.coordinators[0].node_id) == (NONE, 0)


def test_member_id_required_then_join(client):
    group = "g-kip394"
    r = client.call(11, 5, group_id=group, session_timeout_ms=5000, rebalance_timeout_ms=5000, member_id="",
                    protocol_type="consumer", protocols=protocols())
    assert r.error_code == MEMBER_ID_REQUIRED
    assert r.member_id.startswith("moldau-raw-test-")
    member = r.member_id
    r = client.call(11, 5, group_id=group, session_timeout_ms=5000, rebalance_timeout_ms=5000, member_id=member,
                    protocol_type="consumer", protocols=protocols())
    assert (r.error_code, r.generation_id, r.leader, r.member_id, r.protocol_name) == (NONE, 1, member, member, "range")
    assert [m.member_id for m in r.members] == [member]
    # The leader's SyncGroup completes the generation; its assignment comes back.
    Assign = MessageCodec(ALL_APIS[14]).Request.of("assignments")
    s = client.call(14, 3, group_id=group, generation_id=1, member_id=member,
                    assignments=[Assign(member_id=member, assignment=b"\x00\x01xyz")])
    assert (s.error_code, bytes(s.assignment)) == (NONE, b"\x00\x01xyz")
    h = client.call(12, 2, group_id=group, generation_id=1, member_id=member)
    assert h.error_code == NONE
    h = client.call(12, 2, group_id=group, generation_id=0, member_id=member)
    assert h.error_code == ILLEGAL_GENERATION
    h = client.call(12, 2, group_id=group, generation_id=1, member_id="nobody")
    assert h.error_code == UNKNOWN_MEMBER_ID
    # DescribeGroups shows the stable group with the member's metadata and assignment.
    d = client.call(15, 5, groups=[group], include_authorized_operations=False).groups[0]
    assert (d.error_code, d.group_state, d.protocol_type, d.protocol_data) == (NONE, "Stable", "consumer", "range")
    assert bytes(d.members[0].member_assignment) == b"\x00\x01xyz"
    assert d.members[0].client_host == "/127.0.0.1"
    # Batched LeaveGroup (v3+): the member and an unknown one.
    Leaving = MessageCodec(ALL_APIS[13]).Request.of("members")
    lv = client.call(13, 4, group_id=group, members=[Leaving(member_id=member), Leaving(member_id="ghost")])
    assert lv.error_code == NONE
    assert [(m.member_id, m.error_code) for m in lv.members] == [(member, NONE), ("ghost", UNKNOWN_MEMBER_ID)]
    d = client.call(15, 5, groups=[group], include_authorized_operations=False).groups[0]
    assert d.group_state == "Empty" and d.members == []


def test_old_join_needs_no_member_id(client):
    r = client.call(11, 3, group_id="g-old", session_timeout_ms=5000, rebalance_timeout_ms=5000, member_id="",
                    protocol_type="consumer", protocols=protocols())
    assert r.error_code == NONE and r.member_id and r.generation_id == 1


def test_join_errors(client):
    r = client.call(11, 5, group_id="g-err", session_timeout_ms=10, rebalance_timeout_ms=5000, member_id="",
                    protocol_type="consumer", protocols=protocols())
    assert r.error_code == INVALID_SESSION_TIMEOUT
    r = client.call(11, 5, group_id="g-err", session_timeout_ms=5000, rebalance_timeout_ms=5000, member_id="who",
                    protocol_type="consumer", protocols=protocols())
    assert r.error_code == UNKNOWN_MEMBER_ID
    r = client.call(11, 5, group_id="g-err", session_timeout_ms=5000, rebalance_timeout_ms=5000, member_id="",
                    protocol_type="consumer", protocols=[])
    assert r.error_code == INCONSISTENT_GROUP_PROTOCOL
    s = client.call(14, 3, group_id="g-none", generation_id=1, member_id="x", assignments=[])
    assert s.error_code == UNKNOWN_MEMBER_ID


def test_static_member_fencing(gbroker, client):
    group = "g-static"
    r = client.call(11, 5, group_id=group, session_timeout_ms=5000, rebalance_timeout_ms=5000, member_id="",
                    group_instance_id="inst-1", protocol_type="consumer", protocols=protocols())
    assert r.error_code == NONE  # static members need no second round trip
    first = r.member_id
    Assign = MessageCodec(ALL_APIS[14]).Request.of("assignments")
    s = client.call(14, 3, group_id=group, generation_id=r.generation_id, member_id=first,
                    group_instance_id="inst-1", assignments=[Assign(member_id=first, assignment=b"A")])
    assert s.error_code == NONE
    # The same instance comes back with no member id: same generation, no rebalance.
    r2 = client.call(11, 5, group_id=group, session_timeout_ms=5000, rebalance_timeout_ms=5000, member_id="",
                     group_instance_id="inst-1", protocol_type="consumer", protocols=protocols())
    assert r2.error_code == NONE and r2.generation_id == r.generation_id and r2.member_id != first
    # The old member id is fenced.
    h = client.call(12, 3, group_id=group, generation_id=r.generation_id, member_id=first, group_instance_id="inst-1")
    assert h.error_code == FENCED_INSTANCE_ID
    s = client.call(14, 3, group_id=group, generation_id=r.generation_id, member_id=r2.member_id,
                    group_instance_id="inst-1", assignments=[])
    assert (s.error_code, bytes(s.assignment)) == (NONE, b"A")


def test_group_max_size(gbroker):
    group = "g-max"
    members = []
    clients = [Client(gbroker.bootstrap) for _ in range(4)]
    try:
        for c in clients[:3]:
            r = c.call(11, 5, group_id=group, session_timeout_ms=5000, rebalance_timeout_ms=3000, member_id="",
                       protocol_type="consumer", protocols=protocols())
            assert r.error_code == MEMBER_ID_REQUIRED
            members.append(r.member_id)
        r = clients[3].call(11, 5, group_id=group, session_timeout_ms=5000, rebalance_timeout_ms=3000,
                            member_id="", protocol_type="consumer", protocols=protocols())
        assert r.error_code == GROUP_MAX_SIZE_REACHED
        # All three join concurrently and all complete in one generation.
        results: dict[int, Any] = {}

        def join(i: int) -> None:
            results[i] = clients[i].call(11, 5, group_id=group, session_timeout_ms=5000, rebalance_timeout_ms=3000,
                                         member_id=members[i], protocol_type="consumer", protocols=protocols())

        threads = [threading.Thread(target=join, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert {r.error_code for r in results.values()} == {NONE}
        assert len({r.generation_id for r in results.values()}) == 1
        assert sum(1 for r in results.values() if r.members) == 1  # only the leader sees members
    finally:
        for c in clients:
            c.close()


def test_offsets_standalone_metadata_exact(gbroker, client):
    from .kafka_helpers import create_topic

    group = "g-standalone"
    create_topic(gbroker.bootstrap, "anything", partitions=4)  # Kafka refuses commits to missing topics
    create_topic(gbroker.bootstrap, "t-exists")
    Topic = MessageCodec(ALL_APIS[8]).Request.of("topics")
    Part = Topic.of("partitions")
    metas = ["", "plain", "ünïcødé ✓", None]
    parts = [Part(partition_index=i, committed_offset=10 * i + 1, committed_leader_epoch=3, committed_metadata=m)
             for i, m in enumerate(metas)]
    r = client.call(8, 8, group_id=group, generation_id_or_member_epoch=-1, member_id="",
                    topics=[Topic(name="anything", partitions=parts)])
    assert [p.error_code for p in r.topics[0].partitions] == [NONE] * 4
    FTopic = MessageCodec(ALL_APIS[9]).Request.of("topics")
    f = client.call(9, 7, group_id=group, topics=[FTopic(name="anything", partition_indexes=[0, 1, 2, 3, 9])])
    got = [(p.partition_index, p.committed_offset, p.committed_leader_epoch, p.metadata) for p in f.topics[0].partitions]
    assert got == [(0, 1, 3, ""), (1, 11, 3, "plain"), (2, 21, 3, "ünïcødé ✓"), (3, 31, 3, ""), (9, -1, -1, "")]
    # All offsets of the group (null topics), v2+.
    f = client.call(9, 7, group_id=group, topics=None)
    assert sorted(p.partition_index for t in f.topics for p in t.partitions) == [0, 1, 2, 3]
    # A commit with a generation for a group that does not exist is refused.
    r = client.call(8, 8, group_id="g-nogroup", generation_id_or_member_epoch=3, member_id="m",
                    topics=[Topic(name="t-exists", partitions=[Part(partition_index=0, committed_offset=1)])])
    assert r.topics[0].partitions[0].error_code == ILLEGAL_GENERATION
    # From v9 (KIP-848) Kafka says so: GROUP_ID_NOT_FOUND.
    r = client.call(8, 9, group_id="g-nogroup", generation_id_or_member_epoch=3, member_id="m",
                    topics=[Topic(name="t-exists", partitions=[Part(partition_index=0, committed_offset=1)])])
    assert r.topics[0].partitions[0].error_code == GROUP_ID_NOT_FOUND


@pytest.mark.parametrize("version", [1, 5, 7, 8, 9])
def test_offset_fetch_unknown_group(client, version):
    if version >= 8:
        Group = MessageCodec(ALL_APIS[9]).Request.of("groups")
        GTopic = Group.of("topics")
        f = client.call(9, version, groups=[Group(group_id="never", topics=[GTopic(name="t", partition_indexes=[0, 1])])])
        g = f.groups[0]
        assert g.error_code == NONE
        assert [(p.partition_index, p.committed_offset, p.error_code) for p in g.topics[0].partitions] == [
            (0, -1, NONE), (1, -1, NONE)
        ]
    else:
        FTopic = MessageCodec(ALL_APIS[9]).Request.of("topics")
        f = client.call(9, version, group_id="never", topics=[FTopic(name="t", partition_indexes=[0, 1])])
        assert [(p.partition_index, p.committed_offset, p.error_code) for p in f.topics[0].partitions] == [
            (0, -1, NONE), (1, -1, NONE)
        ]


def test_list_describe_delete_offset_delete(gbroker, client):
    from .kafka_helpers import create_topic

    group = "g-admin-raw"
    for name in ("t1", "t2"):
        create_topic(gbroker.bootstrap, name)
    Topic = MessageCodec(ALL_APIS[8]).Request.of("topics")
    Part = Topic.of("partitions")
    client.call(8, 8, group_id=group, generation_id_or_member_epoch=-1, member_id="",
                topics=[Topic(name="t1", partitions=[Part(partition_index=0, committed_offset=5)]),
                        Topic(name="t2", partitions=[Part(partition_index=0, committed_offset=6)])])
    listed = client.call(16, 4, states_filter=["empty"]).groups
    assert group in {g.group_id for g in listed}
    assert group not in {g.group_id for g in client.call(16, 4, states_filter=["Stable"]).groups}
    DTopic = MessageCodec(ALL_APIS[47]).Request.of("topics")
    DPart = DTopic.of("partitions")
    od = client.call(47, 0, group_id=group, topics=[DTopic(name="t1", partitions=[DPart(partition_index=0)])])
    assert od.error_code == NONE and od.topics[0].partitions[0].error_code == NONE
    f = client.call(9, 7, group_id=group, topics=None)
    assert [t.name for t in f.topics] == ["t2"]
    od = client.call(47, 0, group_id="g-absent", topics=[])
    assert od.error_code == GROUP_ID_NOT_FOUND
    r = client.call(42, 2, groups_names=[group, "g-absent"])
    assert [(x.group_id, x.error_code) for x in r.results] == [(group, NONE), ("g-absent", GROUP_ID_NOT_FOUND)]
    d = client.call(15, 6, groups=[group], include_authorized_operations=False).groups[0]
    assert d.error_code == GROUP_ID_NOT_FOUND
    d = client.call(15, 5, groups=[group], include_authorized_operations=False).groups[0]
    assert (d.error_code, d.group_state) == (NONE, "Dead")


def test_advertised_versions(client):
    r = client.call(18, 3, client_software_name="t", client_software_version="1")
    versions = {k.api_key: (k.min_version, k.max_version) for k in r.api_keys}
    assert versions[10] == (0, 6)
    assert versions[11] == (0, 9)
    assert versions[8][0] <= 2 and versions[9][0] <= 1
    assert versions[42] == (0, 2) and versions[47] == (0, 0)


def test_rebalance_in_progress_for_stale_member(client, gbroker):
    group = "g-rip"
    r = client.call(11, 3, group_id=group, session_timeout_ms=2000, rebalance_timeout_ms=2000, member_id="",
                    protocol_type="consumer", protocols=protocols())
    first = r.member_id
    other = Client(gbroker.bootstrap)
    try:
        # A second member joins; the first learns of the rebalance from its heartbeat.
        done: dict[str, Any] = {}
        t = threading.Thread(target=lambda: done.setdefault("r", other.call(
            11, 3, group_id=group, session_timeout_ms=2000, rebalance_timeout_ms=2000, member_id="",
            protocol_type="consumer", protocols=protocols())))
        t.start()
        import time as _t

        deadline = _t.monotonic() + 5
        code = NONE
        while _t.monotonic() < deadline:
            code = client.call(12, 2, group_id=group, generation_id=1, member_id=first).error_code
            if code == REBALANCE_IN_PROGRESS:
                break
            _t.sleep(0.05)
        assert code == REBALANCE_IN_PROGRESS
        # It never rejoins: after the rebalance timeout the second member is alone.
        t.join(10)
        assert done["r"].error_code == NONE and done["r"].generation_id == 2
        assert [m.member_id for m in done["r"].members] == [done["r"].member_id]
    finally:
        other.close()
    _ = uvarint  # keep the raw helpers import honest


def test_offsets_by_topic_id_v10(gbroker, client):
    from .kafka_helpers import create_topic, unique_topic

    topic = unique_topic("by-id")
    create_topic(gbroker.bootstrap, topic, partitions=2)
    MTopic = MessageCodec(ALL_APIS[3]).Request.of("topics")
    meta = client.call(3, 12, topics=[MTopic(name=topic)], allow_auto_topic_creation=False)
    topic_id = meta.topics[0].topic_id
    import uuid

    ghost = uuid.uuid4()
    Topic = MessageCodec(ALL_APIS[8]).Request.of("topics")
    Part = Topic.of("partitions")
    r = client.call(8, 10, group_id="g-ids", generation_id_or_member_epoch=-1, member_id="",
                    topics=[Topic(topic_id=topic_id, partitions=[Part(partition_index=1, committed_offset=12,
                                                                       committed_metadata="by id")]),
                            Topic(topic_id=ghost, partitions=[Part(partition_index=0, committed_offset=1)])])
    assert {(t.topic_id, p.partition_index, p.error_code) for t in r.topics for p in t.partitions} == {
        (topic_id, 1, NONE), (ghost, 0, 100)  # UNKNOWN_TOPIC_ID
    }
    Group = MessageCodec(ALL_APIS[9]).Request.of("groups")
    GTopic = Group.of("topics")
    f = client.call(9, 10, groups=[Group(group_id="g-ids", topics=[GTopic(topic_id=topic_id, partition_indexes=[0, 1])])])
    t = f.groups[0].topics[0]
    assert t.topic_id == topic_id
    assert [(p.partition_index, p.committed_offset, p.metadata) for p in t.partitions] == [(0, -1, ""), (1, 12, "by id")]
    # The same offset read by name with an older version.
    FTopic = MessageCodec(ALL_APIS[9]).Request.of("topics")
    old = client.call(9, 5, group_id="g-ids", topics=[FTopic(name=topic, partition_indexes=[1])])
    assert old.topics[0].partitions[0].committed_offset == 12


def test_load_in_progress_then_offsets(make_broker):
    """A broker restarted over a large ``__consumer_offsets`` answers
    COORDINATOR_LOAD_IN_PROGRESS until its partition is replayed, then the offsets."""
    import asyncio

    from moldau.broker.broker import Broker, Endpoint
    from moldau.config.broker import BrokerConfig
    from moldau.coordinator.group import OffsetCommit
    from moldau.metastore.local import LocalMetaStore

    settings = {"offsets.topic.num.partitions": 1}
    b = make_broker(**settings)
    b.stop()

    async def fill() -> None:
        broker = Broker(BrokerConfig({"offsets.topic.num.partitions": "1"}), b.data_dir,
                        LocalMetaStore(b.data_dir), Endpoint("127.0.0.1", 9))
        await broker.start()
        try:
            await broker.group_coordinator.ensure_topic()
            for i in range(15000):
                broker.group_coordinator.commit_offsets(
                    "loaded", -1, "", None, [OffsetCommit("t", p, i, -1, f"m{i}") for p in range(10)]
                )
        finally:
            await broker.stop()

    asyncio.run(fill())
    b.start()
    c = Client(b.bootstrap)
    try:
        FTopic = MessageCodec(ALL_APIS[9]).Request.of("topics")
        codes = []
        import time as _t

        deadline = _t.monotonic() + 30
        while _t.monotonic() < deadline:
            f = c.call(9, 7, group_id="loaded", topics=[FTopic(name="t", partition_indexes=[3])])
            codes.append(f.error_code)
            if f.error_code == NONE:
                break
            _t.sleep(0.01)
        assert codes[0] == 14 and codes[-1] == NONE  # COORDINATOR_LOAD_IN_PROGRESS, then served
        p = f.topics[0].partitions[0]
        assert (p.committed_offset, p.metadata) == (14999, "m14999")
    finally:
        c.close()
    assert "loaded 1 group(s) from 150000 record(s)" in b.log_text()


def test_both_protocols_on_one_broker(client):
    """A group id belongs to one protocol while it has members; lists and describes
    tell the two kinds apart (ListGroups v5 type filter, ConsumerGroupDescribe)."""
    r = client.call(68, 1, group_id="g-new", member_id="m-new-1", member_epoch=0, rebalance_timeout_ms=5000,
                    subscribed_topic_names=["whatever"], topic_partitions=[])
    assert r.error_code == NONE and r.member_epoch >= 1 and r.member_id == "m-new-1"
    j = client.call(11, 5, group_id="g-new", session_timeout_ms=5000, rebalance_timeout_ms=5000, member_id="",
                    protocol_type="consumer", protocols=protocols())
    assert j.error_code == INCONSISTENT_GROUP_PROTOCOL
    c = client.call(11, 3, group_id="g-old-kind", session_timeout_ms=5000, rebalance_timeout_ms=5000, member_id="",
                    protocol_type="consumer", protocols=protocols())
    assert c.error_code == NONE
    h = client.call(68, 1, group_id="g-old-kind", member_id="m-x", member_epoch=0, rebalance_timeout_ms=5000,
                    subscribed_topic_names=["whatever"], topic_partitions=[])
    assert h.error_code == GROUP_ID_NOT_FOUND
    listed = {g.group_id: (g.group_type, g.group_state) for g in client.call(16, 5).groups}
    assert listed["g-new"] == ("consumer", "Stable") and listed["g-old-kind"][0] == "classic"
    only = {g.group_id for g in client.call(16, 5, types_filter=["consumer"]).groups}
    assert "g-new" in only and "g-old-kind" not in only
    d = client.call(69, 0, group_ids=["g-new", "g-old-kind"], include_authorized_operations=False).groups
    assert (d[0].error_code, d[0].group_state, [m.member_id for m in d[0].members]) == (NONE, "Stable", ["m-new-1"])
    assert d[1].error_code == GROUP_ID_NOT_FOUND
    dg = client.call(15, 6, groups=["g-new"], include_authorized_operations=False).groups[0]
    assert dg.error_code == GROUP_ID_NOT_FOUND
    bye = client.call(68, 1, group_id="g-new", member_id="m-new-1", member_epoch=-1)
    assert (bye.error_code, bye.member_epoch) == (NONE, -1)
    assert client.call(42, 2, groups_names=["g-new"]).results[0].error_code == NONE


def test_group_state_survives_compaction_and_kill9(make_broker):
    """``__consumer_offsets`` is compacted like any compacted topic; what the cleaner
    keeps (the latest offset per key, tombstones dropped after their horizon) is
    exactly the state a restarted coordinator must rebuild."""
    import time as _t

    b = make_broker(**{
        "offsets.topic.num.partitions": 1,
        "offsets.topic.segment.bytes": 4096,
        "log.cleaner.backoff.ms": 100,
        "log.cleaner.delete.retention.ms": 0,
        "group.initial.rebalance.delay.ms": 0,
    })
    from .kafka_helpers import create_topic

    create_topic(b.bootstrap, "t", partitions=4)
    c = Client(b.bootstrap)
    Topic = MessageCodec(ALL_APIS[8]).Request.of("topics")
    Part = Topic.of("partitions")

    def commit(group: str, offset: int) -> None:
        parts = [Part(partition_index=p, committed_offset=offset + p, committed_metadata=f"v{offset}")
                 for p in range(4)]
        r = c.call(8, 8, group_id=group, generation_id_or_member_epoch=-1, member_id="",
                   topics=[Topic(name="t", partitions=parts)])
        assert {p.error_code for p in r.topics[0].partitions} == {NONE}

    try:
        for i in range(600):
            commit("hot", i)
        commit("gone", 1)
        assert c.call(42, 2, groups_names=["gone"]).results[0].error_code == NONE
        for i in range(600, 700):
            commit("hot", i)
    finally:
        c.close()
    part_dir = b.data_dir / "__consumer_offsets-0"

    def log_bytes() -> int:
        return sum(f.stat().st_size for f in part_dir.glob("*.log"))

    # 701 commits of 4 partitions: each offset record is well over 50 bytes, so the
    # uncompacted log would be at least this big. (Measuring the files right after the
    # writes is no baseline: the cleaner runs every 100 ms while they happen.)
    written = 701 * 4 * 50
    deadline = _t.monotonic() + 30
    while _t.monotonic() < deadline and log_bytes() > written // 5:
        _t.sleep(0.2)
    assert log_bytes() <= written // 5, (written, log_bytes())
    b.kill9()
    b.start()
    c = Client(b.bootstrap)
    try:
        FTopic = MessageCodec(ALL_APIS[9]).Request.of("topics")
        deadline = _t.monotonic() + 20
        while True:
            f = c.call(9, 7, group_id="hot", topics=[FTopic(name="t", partition_indexes=[0, 3])])
            if f.error_code == NONE or _t.monotonic() > deadline:
                break
            _t.sleep(0.05)
        got = [(p.committed_offset, p.metadata) for p in f.topics[0].partitions]
        assert got == [(699, "v699"), (702, "v699")]
        gone = c.call(9, 7, group_id="gone", topics=[FTopic(name="t", partition_indexes=[0])])
        assert gone.topics[0].partitions[0].committed_offset == -1
        assert "gone" not in {g.group_id for g in c.call(16, 4).groups}
    finally:
        c.close()


def test_leave_of_an_unknown_group_names_each_member(client):
    """As Kafka 4 (found side by side, tests/reference): LeaveGroup v3+ for a group that
    does not exist answers no group error and UNKNOWN_MEMBER_ID per member; v0-2, which
    have no member list, answer the member's error."""
    Leaving = MessageCodec(ALL_APIS[13]).Request.of("members")
    lv = client.call(13, 4, group_id="g-never", members=[Leaving(member_id="a"), Leaving(member_id="b")])
    assert (lv.error_code, [m.error_code for m in lv.members]) == (NONE, [UNKNOWN_MEMBER_ID, UNKNOWN_MEMBER_ID])
    assert client.call(13, 2, group_id="g-never", member_id="a").error_code == UNKNOWN_MEMBER_ID


def test_consumer_heartbeat_epochs_as_kafka(client, gbroker):
    """KIP-848, as Kafka 4 answers: the first member of a new group gets epoch 1 (the
    group's epoch moves once per heartbeat, not once per change in it), and a heartbeat
    with an epoch above 0 for a group that does not exist gets GROUP_ID_NOT_FOUND."""
    from .kafka_helpers import create_topic, unique_topic

    topic = create_topic(gbroker.bootstrap, unique_topic("cg-epoch"), 2)
    r = client.call(68, 0, group_id="cg-never", member_id="m" * 22, member_epoch=3, rebalance_timeout_ms=5000,
                    subscribed_topic_names=[topic], topic_partitions=[])
    assert r.error_code == GROUP_ID_NOT_FOUND
    r = client.call(68, 0, group_id="cg-epoch", member_id="n" * 22, member_epoch=0, rebalance_timeout_ms=5000,
                    subscribed_topic_names=[topic], topic_partitions=[])
    assert (r.error_code, r.member_epoch) == (NONE, 1)
    second = client.call(68, 0, group_id="cg-epoch", member_id="o" * 22, member_epoch=0,
                         rebalance_timeout_ms=5000, subscribed_topic_names=[topic], topic_partitions=[])
    assert (second.error_code, second.member_epoch) == (NONE, 2)
