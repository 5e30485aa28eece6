"""Scenarios run the same way against Apache Kafka and against Moldau, and their comparison.

Each scenario takes a bootstrap address and returns a flat ``{observation: value}`` dict
of what the broker answered (an error code's name, an offset, a config's value and
source, a group state), never anything that differs by construction (ports, ids, times).
:func:`compare` lists the observations whose values differ; the tests hold every such
difference against :data:`KNOWN` (each with its reason, mirrored in
docs/differences-from-kafka.md), so a new difference fails and so does one that has
gone away (then the list and the doc are updated).
"""

from __future__ import annotations

import socket
import struct
import time
import uuid
from collections.abc import Callable

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

Observations = dict[str, object]


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})


def name_of(exc: BaseException) -> str:
    """A Kafka error's name (``UNKNOWN_TOPIC_OR_PART``), or the exception's type."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0].name()
    return type(exc).__name__


def outcome(fn: Callable[[], object]) -> str:
    """"OK", or the name of the error the call raised."""
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the error is the observation
        return name_of(exc)
    return "OK"


def unique(prefix: str) -> str:
    return f"ref-{prefix}-{uuid.uuid4().hex[:8]}"


def create(bootstrap: str, topic: str, partitions: int = 1, config: dict[str, str] | None = None) -> None:
    a = admin(bootstrap)  # kept alive until the future resolves
    a.create_topics([NewTopic(topic, partitions, 1, config=config or {})], request_timeout=15)[topic].result(
        timeout=20)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        md = a.list_topics(topic=topic, timeout=5).topics.get(topic)
        if md is not None and md.error is None and len(md.partitions) == partitions and all(
                p.leader >= 0 for p in md.partitions.values()):
            return
        time.sleep(0.1)
    raise AssertionError(f"{topic} has no leaders after 15 s")


def produce(bootstrap: str, topic: str, count: int, partition: int = 0, timestamp: int | None = None) -> list:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "message.timeout.ms": 15000})
    results: list = []
    for i in range(count):
        kwargs = {"timestamp": timestamp + i} if timestamp is not None else {}
        p.produce(topic, f"v{i}".encode(), partition=partition,
                  on_delivery=lambda err, msg: results.append((err.name() if err else "OK", msg.offset())),
                  **kwargs)
    p.flush(20)
    return results


# --------------------------------------------------------------------------- wire
def api_versions(bootstrap: str) -> dict[int, int]:
    """{api_key: max version} from ApiVersions v0 on a raw socket (no client in between)."""
    host, port = bootstrap.rsplit(":", 1)
    frame = struct.pack(">hhih", 18, 0, 5, 3) + b"ref"
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(struct.pack(">i", len(frame)) + frame)
        buf = b""
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    _size, _corr, error, count = struct.unpack_from(">iihi", buf, 0)
    assert error == 0
    out = {}
    for i in range(count):
        key, _lo, hi = struct.unpack_from(">hhh", buf, 14 + 6 * i)
        out[key] = hi
    return out


# --------------------------------------------------------------------------- scenarios
def topic_errors(bootstrap: str) -> Observations:
    """CreateTopics, CreatePartitions, DeleteTopics, Metadata: what common mistakes answer."""
    a = admin(bootstrap)
    obs: Observations = {}

    def create_one(topic: str, partitions: int = 1, rf: int = 1, config: dict | None = None,
                   validate: bool = False) -> str:
        futs = a.create_topics([NewTopic(topic, partitions, rf, config=config or {})], request_timeout=15,
                               validate_only=validate)
        return outcome(lambda: futs[topic].result(timeout=20))

    existing = unique("exists")
    create(bootstrap, existing, 2)
    obs["create: already exists"] = create_one(existing)
    obs["create: partitions 0"] = create_one(unique("p0"), partitions=0)
    obs["create: replication factor 3 on one broker"] = create_one(unique("rf3"), rf=3)
    obs["create: replication factor 0"] = create_one(unique("rf0"), rf=0)
    obs["create: name with '/'"] = create_one("bad/name")
    obs["create: name of 250 chars"] = create_one("x" * 250)
    obs["create: name '..'"] = create_one("..")
    obs["create: unknown config key"] = create_one(unique("cfg"), config={"no.such.config": "1"})
    obs["create: cleanup.policy=bogus"] = create_one(unique("cfg"), config={"cleanup.policy": "bogus"})
    obs["create: retention.ms=abc"] = create_one(unique("cfg"), config={"retention.ms": "abc"})
    obs["create: segment.bytes=10 (below minimum)"] = create_one(unique("cfg"), config={"segment.bytes": "10"})
    obs["create: validate_only"] = create_one(unique("val"), validate=True)
    parts = a.create_partitions([NewPartitions(existing, 1)], request_timeout=15)
    obs["create_partitions: fewer"] = outcome(lambda: parts[existing].result(timeout=20))
    parts = a.create_partitions([NewPartitions(existing, 2)], request_timeout=15)
    obs["create_partitions: same count"] = outcome(lambda: parts[existing].result(timeout=20))
    missing = unique("missing")
    parts = a.create_partitions([NewPartitions(missing, 3)], request_timeout=15)
    obs["create_partitions: unknown topic"] = outcome(lambda: parts[missing].result(timeout=20))
    dels = a.delete_topics([missing], request_timeout=15)
    obs["delete_topics: unknown topic"] = outcome(lambda: dels[missing].result(timeout=20))
    md = a.list_topics(topic=missing, timeout=10).topics.get(missing)
    obs["metadata: unknown topic, from an admin client"] = (
        md.error.name() if md is not None and md.error is not None else "OK")
    time.sleep(2)
    md = a.list_topics(timeout=10).topics.get(missing)
    obs["metadata: that topic 2 s later"] = "absent" if md is None else f"{len(md.partitions)} partitions"
    return obs


def offsets(bootstrap: str) -> Observations:
    """Produce offsets, ListOffsets (earliest, latest, by time, max timestamp), DeleteRecords."""
    a = admin(bootstrap)
    topic = unique("offsets")
    create(bootstrap, topic, 1)
    base = 1_700_000_000_000
    obs: Observations = {"produce: (error, offset) of 5 records": produce(bootstrap, topic, 5, timestamp=base)}
    tp = TopicPartition(topic, 0)
    for label, spec in (("earliest", OffsetSpec.earliest()), ("latest", OffsetSpec.latest()),
                        ("max_timestamp", OffsetSpec.max_timestamp()),
                        ("for_timestamp base+2", OffsetSpec.for_timestamp(base + 2)),
                        ("for_timestamp after all", OffsetSpec.for_timestamp(base + 100))):
        try:
            res = a.list_offsets({tp: spec}, request_timeout=15)[tp].result(timeout=20)
            obs[f"list_offsets {label}"] = (res.offset, res.timestamp if label.startswith(("max", "for")) else None)
        except Exception as exc:  # noqa: BLE001
            obs[f"list_offsets {label}"] = name_of(exc)
    missing = TopicPartition(unique("missing"), 0)
    obs["list_offsets: unknown topic"] = outcome(
        lambda: a.list_offsets({missing: OffsetSpec.latest()}, request_timeout=15)[missing].result(timeout=20))
    beyond = TopicPartition(topic, 0, 50)
    obs["delete_records: beyond high watermark"] = outcome(
        lambda: a.delete_records([beyond], request_timeout=15)[beyond].result(timeout=20))
    two = TopicPartition(topic, 0, 2)
    obs["delete_records: to 2 -> low watermark"] = a.delete_records([two], request_timeout=15)[two].result(
        timeout=20).low_watermark
    obs["list_offsets earliest after delete"] = a.list_offsets(
        {tp: OffsetSpec.earliest()}, request_timeout=15)[tp].result(timeout=20).offset
    # a consumer positioned past the end with auto.offset.reset=error
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("oor"), "auto.offset.reset": "error",
                  "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, 0, 100)])
        seen = "nothing"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and seen == "nothing":
            msg = c.poll(0.5)
            if msg is not None:
                seen = msg.error().name() if msg.error() else f"record at {msg.offset()}"
        obs["fetch: offset 100 of 5, auto.offset.reset=error"] = seen
    finally:
        c.close()
    return obs


CONFIG_KEYS_TOPIC = ["cleanup.policy", "compression.type", "retention.ms", "retention.bytes", "segment.bytes",
                     "segment.ms", "max.message.bytes", "min.insync.replicas", "message.timestamp.type",
                     "unclean.leader.election.enable", "delete.retention.ms", "min.cleanable.dirty.ratio",
                     "file.delete.delay.ms", "flush.messages", "index.interval.bytes", "segment.index.bytes",
                     "message.timestamp.before.max.ms", "message.timestamp.after.max.ms",
                     "min.compaction.lag.ms", "max.compaction.lag.ms", "preallocate", "segment.jitter.ms"]
CONFIG_KEYS_BROKER = ["num.partitions", "default.replication.factor", "log.retention.hours", "log.retention.ms",
                      "log.segment.bytes", "message.max.bytes", "auto.create.topics.enable", "compression.type",
                      "log.cleanup.policy", "min.insync.replicas", "offsets.retention.minutes",
                      "group.initial.rebalance.delay.ms", "delete.topic.enable", "log.retention.bytes",
                      "unclean.leader.election.enable", "group.min.session.timeout.ms",
                      "group.max.session.timeout.ms", "offsets.topic.num.partitions", "log.cleaner.enable",
                      "transaction.max.timeout.ms", "replica.fetch.max.bytes", "socket.request.max.bytes",
                      "log.message.timestamp.type", "max.connections"]


def _describe(a: AdminClient, resource: ConfigResource) -> dict:
    return a.describe_configs([resource], request_timeout=15)[resource].result(timeout=20)


def _settled(a: AdminClient, topic: str, key: str, before: tuple) -> tuple:
    """(value, source) of a topic config once it is no longer ``before``: Kafka answers
    DescribeConfigs from the broker's metadata image, which follows the controller's
    commit of the change a moment later (bounded: 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        e = _describe(a, ConfigResource(ResourceType.TOPIC, topic))[key]
        now = (e.value, int(e.source))
        if now != before or time.monotonic() > deadline:
            return now
        time.sleep(0.1)


def configs(bootstrap: str) -> Observations:
    """DescribeConfigs of a topic (with one override) and of the broker: values and sources,
    and what altering with mistakes answers."""
    a = admin(bootstrap)
    topic = unique("configs")
    create(bootstrap, topic, 1, {"retention.ms": "3600000"})
    obs: Observations = {}
    entries = _describe(a, ConfigResource(ResourceType.TOPIC, topic))
    for key in CONFIG_KEYS_TOPIC:
        e = entries.get(key)
        obs[f"topic {key}"] = None if e is None else (e.value, e.source, e.is_read_only, e.is_sensitive)
    obs["topic: config names only in this broker"] = sorted(entries)
    broker_id = str(next(iter(a.list_topics(timeout=10).brokers)))
    b_entries = _describe(a, ConfigResource(ResourceType.BROKER, broker_id))
    for key in CONFIG_KEYS_BROKER:
        e = b_entries.get(key)
        obs[f"broker {key}"] = None if e is None else (e.value, e.source)
    obs["broker: number of config entries > 100"] = len(b_entries) > 100
    missing = ConfigResource(ResourceType.TOPIC, unique("missing"))
    obs["describe_configs: unknown topic"] = outcome(lambda: _describe(a, missing))

    def alter(entry: ConfigEntry, resource: ConfigResource | None = None) -> str:
        res = resource or ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
        return outcome(lambda: a.incremental_alter_configs([res], request_timeout=15)[res].result(timeout=20))

    set_op = AlterConfigOpType.SET
    obs["incremental_alter: retention.ms=abc"] = alter(ConfigEntry("retention.ms", "abc", incremental_operation=set_op))
    obs["incremental_alter: unknown key"] = alter(ConfigEntry("no.such.config", "1", incremental_operation=set_op))
    obs["incremental_alter: APPEND to retention.ms"] = alter(
        ConfigEntry("retention.ms", "5", incremental_operation=AlterConfigOpType.APPEND))
    obs["incremental_alter: retention.ms=7200000"] = alter(
        ConfigEntry("retention.ms", "7200000", incremental_operation=set_op))
    obs["after alter: retention.ms"] = _settled(a, topic, "retention.ms", ("3600000", 1))
    obs["incremental_alter: DELETE retention.ms"] = alter(
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE))
    obs["after delete: retention.ms"] = _settled(a, topic, "retention.ms", ("7200000", 1))
    missing_res = ConfigResource(ResourceType.TOPIC, missing.name,
                                 incremental_configs=[ConfigEntry("retention.ms", "1", incremental_operation=set_op)])
    obs["incremental_alter: unknown topic"] = alter(ConfigEntry("retention.ms", "1"), missing_res)
    return obs


def _group_state(a: AdminClient, group: str) -> tuple:
    try:
        d = a.describe_consumer_groups([group], request_timeout=15)[group].result(timeout=20)
    except Exception as exc:  # noqa: BLE001
        return (name_of(exc),)
    return (str(d.state).split(".")[-1], str(getattr(d, "type", "")).split(".")[-1], d.partition_assignor,
            len(d.members), d.is_simple_consumer_group)


def groups(bootstrap: str) -> Observations:
    """Classic and consumer-protocol groups: states through a member's life, and errors."""
    a = admin(bootstrap)
    topic = unique("groups")
    create(bootstrap, topic, 2)
    produce(bootstrap, topic, 3)
    obs: Observations = {}
    for protocol in ("classic", "consumer"):
        group = unique(f"g-{protocol}")
        conf = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                "enable.auto.commit": False, "group.protocol": protocol}
        if protocol == "classic":
            conf["session.timeout.ms"] = 10000
        c = Consumer(conf)
        c.subscribe([topic])
        got = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and got < 3:
            msg = c.poll(0.5)
            if msg is not None and not msg.error():
                got += 1
        obs[f"{protocol}: records read"] = got
        c.commit(asynchronous=False)
        obs[f"{protocol}: state with a member"] = _group_state(a, group)
        req = ConsumerGroupTopicPartitions(group)
        res = a.list_consumer_group_offsets([req], request_timeout=15)[group].result(timeout=20)
        obs[f"{protocol}: committed offsets"] = sorted((tp.partition, tp.offset) for tp in res.topic_partitions)
        dels = a.delete_consumer_groups([group], request_timeout=15)
        obs[f"{protocol}: delete with a member"] = outcome(lambda g=group, d=dels: d[g].result(timeout=20))
        c.close()
        deadline = time.monotonic() + 15
        state = _group_state(a, group)
        while time.monotonic() < deadline and state[0] not in ("EMPTY", "DEAD"):
            time.sleep(0.2)
            state = _group_state(a, group)
        obs[f"{protocol}: state after close"] = state
        listed = a.list_consumer_groups(request_timeout=15).result(timeout=20)
        mine = [g for g in listed.valid if g.group_id == group]
        obs[f"{protocol}: listed as"] = [(str(g.state).split(".")[-1], str(getattr(g, "type", "")).split(".")[-1],
                                          g.is_simple_consumer_group) for g in mine]
        dels = a.delete_consumer_groups([group], request_timeout=15)
        obs[f"{protocol}: delete when empty"] = outcome(lambda g=group, d=dels: d[g].result(timeout=20))
    ghost = unique("ghost")
    obs["describe unknown group"] = _group_state(a, ghost)
    dels = a.delete_consumer_groups([ghost], request_timeout=15)
    obs["delete unknown group"] = outcome(lambda: dels[ghost].result(timeout=20))
    req = ConsumerGroupTopicPartitions(ghost)
    res = a.list_consumer_group_offsets([req], request_timeout=15)[ghost]
    obs["offsets of unknown group"] = outcome(lambda: res.result(timeout=20))
    # an admin commit for a group nobody is in, then one from a stale classic member id
    simple = unique("simple")
    alter = ConsumerGroupTopicPartitions(simple, [TopicPartition(topic, 0, 1)])
    obs["alter offsets: simple group"] = outcome(
        lambda: a.alter_consumer_group_offsets([alter], request_timeout=15)[simple].result(timeout=20))
    obs["simple group: described"] = _group_state(a, simple)
    bad = ConsumerGroupTopicPartitions(simple, [TopicPartition(topic, 7, 1)])
    obs["alter offsets: partition 7 of 2"] = outcome(
        lambda: a.alter_consumer_group_offsets([bad], request_timeout=15)[simple].result(timeout=20))
    return obs


def _produce_one(bootstrap: str, topic: str, value: bytes | None, key: bytes | None = None,
                 timestamp: int | None = None, **conf: object) -> str:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "message.timeout.ms": 10000, "retries": 0,
                  **conf})
    result: list[str] = []
    kwargs = {"timestamp": timestamp} if timestamp is not None else {}
    p.produce(topic, value, key, on_delivery=lambda err, _msg: result.append(err.name() if err else "OK"),
              **kwargs)
    p.flush(15)
    return result[0] if result else "no delivery report"


def produce_errors(bootstrap: str) -> Observations:
    """What the broker refuses in Produce, and what Metadata/DescribeCluster say."""
    a = admin(bootstrap)
    obs: Observations = {}
    small = unique("small")
    create(bootstrap, small, 1, {"max.message.bytes": "1000"})
    obs["produce: 5000 B to max.message.bytes=1000"] = _produce_one(bootstrap, small, b"x" * 5000,
                                                                   **{"compression.type": "none"})
    compacted = unique("compacted")
    create(bootstrap, compacted, 1, {"cleanup.policy": "compact"})
    obs["produce: keyless record to a compacted topic"] = _produce_one(bootstrap, compacted, b"v")
    obs["produce: keyed record to a compacted topic"] = _produce_one(bootstrap, compacted, b"v", b"k")
    old = unique("old")
    create(bootstrap, old, 1, {"message.timestamp.before.max.ms": "60000"})
    obs["produce: timestamp a day old, before.max.ms=60000"] = _produce_one(
        bootstrap, old, b"v", timestamp=int(time.time() * 1000) - 86_400_000)
    isr = unique("isr")
    create(bootstrap, isr, 1, {"min.insync.replicas": "2"})
    obs["produce: acks=all, min.insync.replicas=2 of 1 replica"] = _produce_one(bootstrap, isr, b"v",
                                                                               **{"acks": "all"})
    obs["produce: acks=1, min.insync.replicas=2 of 1 replica"] = _produce_one(bootstrap, isr, b"v", **{"acks": 1})
    missing = unique("missing")
    desc = a.describe_topics(TopicCollection([missing]), request_timeout=15)[missing]
    obs["describe_topics: unknown topic"] = outcome(lambda: desc.result(timeout=20))
    cluster = a.describe_cluster(request_timeout=15).result(timeout=20)
    obs["describe_cluster: brokers, controller among them"] = (
        len(cluster.nodes), cluster.controller is not None and cluster.controller.id in {n.id for n in cluster.nodes})
    return obs


def admin_misc(bootstrap: str) -> Observations:
    """ACLs without an authorizer, SCRAM users, leader elections, transactions by raw
    request where confluent-kafka has no call (kafka-python's admin client)."""
    from confluent_kafka.admin import (
        AclBinding,
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )
    from confluent_kafka.admin import ResourceType as RT

    a = admin(bootstrap)
    obs: Observations = {}
    binding = AclBinding(RT.TOPIC, "t", ResourcePatternType.LITERAL, "User:alice", "*", AclOperation.READ,
                         AclPermissionType.ALLOW)
    res = a.create_acls([binding], request_timeout=15)[binding]
    obs["create_acls without an authorizer"] = outcome(lambda: res.result(timeout=20))
    filt = AclBindingFilter(RT.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                            AclPermissionType.ANY)
    obs["describe_acls without an authorizer"] = outcome(
        lambda: a.describe_acls(filt, request_timeout=15).result(timeout=20))
    user = unique("user")
    obs["describe scram: unknown user"] = outcome(
        lambda: a.describe_user_scram_credentials([user], request_timeout=15)[user].result(timeout=20))
    upsert = UserScramCredentialUpsertion(user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096),
                                          b"secret", b"salt-salt-salt")
    obs["alter scram: add user"] = outcome(
        lambda: a.alter_user_scram_credentials([upsert], request_timeout=15)[user].result(timeout=20))
    desc = a.describe_user_scram_credentials([user], request_timeout=15)[user]
    try:
        got = desc.result(timeout=20)
        obs["describe scram: that user"] = [(str(i.mechanism).split(".")[-1], i.iterations)
                                            for i in got.scram_credential_infos]
    except Exception as exc:  # noqa: BLE001
        obs["describe scram: that user"] = name_of(exc)
    topic = unique("elect")
    create(bootstrap, topic, 1)
    from confluent_kafka import ElectionType

    tp = TopicPartition(topic, 0)
    fut = a.elect_leaders(ElectionType.PREFERRED, [tp])  # (its request_timeout= raises SystemError)
    try:
        result = fut.result(timeout=20)
        obs["elect_leaders preferred, leader already preferred"] = sorted(
            (f"{k.topic == topic}-{k.partition}", v.name() if isinstance(v, KafkaError) else
             (v.error.name() if getattr(v, "error", None) else "OK")) for k, v in result.items())
    except Exception as exc:  # noqa: BLE001
        obs["elect_leaders preferred, leader already preferred"] = name_of(exc)
    return obs


class Raw:
    """One connection sending requests encoded with Moldau's codec (generated from Kafka's
    message specs) and decoding the answers: for error codes confluent-kafka does not
    expose, the same bytes go to both brokers. (tests/integration/test_groups_protocol.py
    has the same client inside a test module.)"""

    def __init__(self, bootstrap: str) -> None:
        from integration.raw_kafka import connect

        self.sock = connect(bootstrap, timeout=20)
        self.cid = 0

    def call(self, api_key: int, version: int, /, **fields: object) -> object:
        from integration.raw_kafka import read_response, request
        from moldau.protocol.codec import MessageCodec
        from moldau.protocol.messages import ALL_APIS

        api = ALL_APIS[api_key]
        codec = MessageCodec(api)
        flexible = api.is_flexible(version)
        self.cid += 1
        self.sock.sendall(request(api_key, version, self.cid,
                                  bytes(codec.encode_request(version, codec.Request(**fields))), flexible=flexible))
        got = read_response(self.sock)
        if got is None:
            return "connection closed"
        corr, rest = got
        assert corr == self.cid
        return codec.decode_response(version, rest, 1 if flexible and api_key != 18 else 0)

    @staticmethod
    def part(api_key: int, *path: str) -> type:
        from moldau.protocol.codec import MessageCodec
        from moldau.protocol.messages import ALL_APIS

        cls = MessageCodec(ALL_APIS[api_key]).Request
        for name in path:
            cls = cls.of(name)
        return cls

    def find_coordinator(self, key: str, key_type: int) -> str:
        """FindCoordinator until it answers (bounded): Kafka creates __consumer_offsets or
        __transaction_state on the first one and answers NOT_COORDINATOR to group and
        transaction requests before that, as a client never skips this step."""
        deadline = time.monotonic() + 60
        while True:
            r = self.call(10, 4, key_type=key_type, coordinator_keys=[key])
            code = r.coordinators[0].error_code
            if code == 0 or time.monotonic() > deadline:
                return _err(code)
            time.sleep(0.2)

    def close(self) -> None:
        self.sock.close()


def _err(code: object) -> str:
    from moldau.protocol.errors import ErrorCode

    if isinstance(code, str):
        return code
    try:
        return ErrorCode(code).name
    except ValueError:
        return str(code)


def protocol_errors(bootstrap: str) -> Observations:
    """Group, offset and transaction APIs by raw request: the error codes Kafka's clients
    act on (one node: the bootstrap broker is every coordinator)."""
    topic = unique("raw")
    create(bootstrap, topic, 1)
    produce(bootstrap, topic, 3)
    obs: Observations = {}
    c = Raw(bootstrap)
    try:
        group = unique("rawg")
        cg, txn = unique("cg"), unique("txn")
        obs["FindCoordinator group"] = c.find_coordinator(group, 0)
        obs["FindCoordinator consumer group"] = c.find_coordinator(cg, 0)
        obs["FindCoordinator transaction"] = c.find_coordinator(txn, 1)
        proto = Raw.part(11, "protocols")(name="range", metadata=b"\x00\x00\x00\x00\x00\x00")

        def join(**kw: object) -> object:
            args = {"group_id": group, "session_timeout_ms": 10000, "rebalance_timeout_ms": 10000, "member_id": "",
                    "protocol_type": "consumer", "protocols": [proto], **kw}
            return c.call(11, 5, **args)

        obs["JoinGroup session 1 ms"] = _err(join(session_timeout_ms=1).error_code)
        obs["JoinGroup session 1 h"] = _err(join(session_timeout_ms=3_600_000).error_code)
        obs["JoinGroup empty group id"] = _err(join(group_id="").error_code)
        obs["JoinGroup no protocols"] = _err(join(protocols=[]).error_code)
        r = join()
        obs["JoinGroup v5 without member id"] = _err(r.error_code)
        member = r.member_id
        r = join(member_id=member)
        obs["JoinGroup with it: error, generation"] = (_err(r.error_code), r.generation_id)
        obs["JoinGroup other protocol type"] = _err(join(protocol_type="connect", member_id="").error_code)
        assign = Raw.part(14, "assignments")
        r = c.call(14, 3, group_id=group, generation_id=1, member_id=member,
                   assignments=[assign(member_id=member, assignment=b"")])
        obs["SyncGroup leader"] = _err(r.error_code)
        obs["SyncGroup wrong generation"] = _err(c.call(14, 3, group_id=group, generation_id=7, member_id=member,
                                                        assignments=[]).error_code)
        obs["SyncGroup unknown group"] = _err(c.call(14, 3, group_id=unique("nog"), generation_id=1,
                                                     member_id="m", assignments=[]).error_code)
        obs["Heartbeat wrong generation"] = _err(c.call(12, 3, group_id=group, generation_id=0,
                                                        member_id=member).error_code)
        obs["Heartbeat unknown member"] = _err(c.call(12, 3, group_id=group, generation_id=1,
                                                      member_id="ghost").error_code)
        obs["Heartbeat unknown group"] = _err(c.call(12, 3, group_id=unique("nog"), generation_id=1,
                                                     member_id="m").error_code)
        oc_topic, oc_part = Raw.part(8, "topics"), Raw.part(8, "topics", "partitions")

        def commit(gen: int, mid: str, name: str = topic, part: int = 0, grp: str = group) -> list:
            r = c.call(8, 8, group_id=grp, generation_id_or_member_epoch=gen, member_id=mid,
                       topics=[oc_topic(name=name, partitions=[oc_part(partition_index=part, committed_offset=1)])])
            if getattr(r, "error_code", 0):
                return [_err(r.error_code)]
            return [_err(p.error_code) for t in r.topics for p in t.partitions]

        obs["OffsetCommit member of the generation"] = commit(1, member)
        obs["OffsetCommit wrong generation"] = commit(5, member)
        obs["OffsetCommit unknown member"] = commit(1, "ghost")
        obs["OffsetCommit partition 3 of 1"] = commit(1, member, part=3)
        obs["OffsetCommit simple (generation -1) to a group with members"] = commit(-1, "")
        leaving = Raw.part(13, "members")
        r = c.call(13, 4, group_id=group, members=[leaving(member_id=member), leaving(member_id="ghost")])
        obs["LeaveGroup member and ghost"] = (_err(r.error_code), sorted(_err(m.error_code) for m in r.members))
        r = c.call(13, 4, group_id=unique("nog"), members=[leaving(member_id="ghost")])
        obs["LeaveGroup unknown group"] = (_err(r.error_code), [_err(m.error_code) for m in r.members])
        od_topic, od_part = Raw.part(47, "topics"), Raw.part(47, "topics", "partitions")
        r = c.call(47, 0, group_id=unique("nog"), topics=[od_topic(name=topic, partitions=[od_part(partition_index=0)])])
        obs["OffsetDelete unknown group"] = _err(r.error_code)
        r = c.call(47, 0, group_id=group, topics=[od_topic(name=topic, partitions=[od_part(partition_index=0)])])
        obs["OffsetDelete empty group"] = (_err(r.error_code), [_err(p.error_code) for t in r.topics
                                                                for p in t.partitions])
        # KIP-848

        def cgh(**kw: object) -> object:
            args = {"group_id": cg, "member_id": uuid.uuid4().hex[:22], "member_epoch": 0,
                    "rebalance_timeout_ms": 10000, "subscribed_topic_names": [topic], "topic_partitions": [], **kw}
            return c.call(68, 0, **args)

        obs["ConsumerGroupHeartbeat unknown assignor"] = _err(cgh(server_assignor="nope").error_code)
        obs["ConsumerGroupHeartbeat unknown member, epoch 3"] = _err(cgh(member_epoch=3).error_code)
        obs["ConsumerGroupHeartbeat empty group id"] = _err(cgh(group_id="").error_code)
        obs["ConsumerGroupHeartbeat join without topics"] = _err(cgh(subscribed_topic_names=None).error_code)
        r = cgh()
        obs["ConsumerGroupHeartbeat join: error, epoch"] = (_err(r.error_code), r.member_epoch)
        obs["ConsumerGroupHeartbeat to a classic group"] = _err(cgh(group_id=group).error_code)
        # transactions
        obs["InitProducerId timeout above the maximum"] = _err(
            c.call(22, 4, transactional_id=txn, transaction_timeout_ms=100_000_000).error_code)
        obs["InitProducerId empty transactional id"] = _err(
            c.call(22, 4, transactional_id="", transaction_timeout_ms=60000).error_code)
        deadline = time.monotonic() + 30
        while True:  # as a client: retriable while the coordinator loads its partition
            r = c.call(22, 4, transactional_id=txn, transaction_timeout_ms=60000)
            if _err(r.error_code) not in ("NOT_COORDINATOR", "COORDINATOR_LOAD_IN_PROGRESS",
                                          "COORDINATOR_NOT_AVAILABLE") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
            c.find_coordinator(txn, 1)
        obs["InitProducerId: error, epoch"] = (_err(r.error_code), r.producer_epoch)
        nobody = unique("none")
        c.find_coordinator(nobody, 1)
        obs["EndTxn unknown transactional id"] = _err(c.call(26, 3, transactional_id=nobody, producer_id=999,
                                                             producer_epoch=0, committed=True).error_code)
        pid, epoch = r.producer_id, r.producer_epoch
        obs["EndTxn with no transaction open"] = _err(c.call(26, 3, transactional_id=txn, producer_id=pid,
                                                             producer_epoch=epoch, committed=True).error_code)
        obs["EndTxn with a stale epoch"] = _err(c.call(26, 3, transactional_id=txn, producer_id=pid,
                                                       producer_epoch=epoch - 1 if epoch else 0,
                                                       committed=False).error_code)
        add_topic = Raw.part(24, "v3_and_below_topics")
        r = c.call(24, 3, v3_and_below_transactional_id=txn, v3_and_below_producer_id=pid + 1,
                   v3_and_below_producer_epoch=epoch, v3_and_below_topics=[add_topic(name=topic, partitions=[0])])
        obs["AddPartitionsToTxn wrong producer id"] = sorted(_err(p.partition_error_code) for t in r.results_by_topic_v3_and_below
                                                             for p in t.results_by_partition)
        r = c.call(24, 3, v3_and_below_transactional_id=txn, v3_and_below_producer_id=pid,
                   v3_and_below_producer_epoch=epoch, v3_and_below_topics=[add_topic(name=unique("none"),
                                                                                     partitions=[0])])
        obs["AddPartitionsToTxn unknown topic"] = sorted(_err(p.partition_error_code)
                                                         for t in r.results_by_topic_v3_and_below
                                                         for p in t.results_by_partition)
        r = c.call(65, 0, transactional_ids=[unique("none"), txn])
        obs["DescribeTransactions unknown and empty"] = [(_err(t.error_code), t.transaction_state)
                                                         for t in r.transaction_states]
        r = c.call(66, 0, state_filters=[], producer_id_filters=[])
        obs["ListTransactions: error"] = _err(r.error_code)
        # partitions that do not exist
        lo_topic, lo_part = Raw.part(2, "topics"), Raw.part(2, "topics", "partitions")
        r = c.call(2, 7, replica_id=-1, isolation_level=0,
                   topics=[lo_topic(name=topic, partitions=[lo_part(partition_index=5, timestamp=-1)])])
        obs["ListOffsets partition 5 of 1"] = [_err(p.error_code) for t in r.topics for p in t.partitions]
        dp_topic = Raw.part(61, "topics")
        r = c.call(61, 0, topics=[dp_topic(name=unique("none"), partition_indexes=[0]),
                                  dp_topic(name=topic, partition_indexes=[0, 5])])
        obs["DescribeProducers unknown topic, partition 5"] = [(_err(p.error_code), len(p.active_producers))
                                                              for t in r.topics for p in t.partitions]
        oe_topic, oe_part = Raw.part(23, "topics"), Raw.part(23, "topics", "partitions")
        r = c.call(23, 4, replica_id=-1, topics=[oe_topic(topic=topic, partitions=[
            oe_part(partition=0, current_leader_epoch=-1, leader_epoch=0),
            oe_part(partition=0, current_leader_epoch=99, leader_epoch=0),
            oe_part(partition=4, current_leader_epoch=-1, leader_epoch=0)])])
        obs["OffsetForLeaderEpoch epoch 0, fenced 99, partition 4"] = [
            (_err(p.error_code), p.end_offset if not p.error_code else None) for t in r.topics for p in t.partitions]
        r = c.call(35, 4, topics=None)
        obs["DescribeLogDirs all: error, dirs"] = (_err(r.error_code), len(r.results),
                                                   [_err(d.error_code) for d in r.results])
    finally:
        c.close()
    return obs


def kafka_python(bootstrap: str) -> Observations:
    """kafka-python 3 (a second, pure-Python client): CreateTopics' returned configs, its
    admin errors, a group that reads and commits, end offsets and offsets by time."""
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTP
    from kafka.admin import NewTopic as KNewTopic

    obs: Observations = {}
    adm = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)

    def kp_outcome(fn: Callable[[], object]) -> object:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - the error is the observation
            return type(exc).__name__

    try:
        topic = unique("kp")
        res = adm.create_topics([KNewTopic(topic, 2, 1, topic_configs={"retention.ms": "3600000"})])
        created = res["topics"][0]
        obs["create: error, partitions, replication factor"] = (
            created["error_code"], created["num_partitions"], created["replication_factor"])
        configs = created.get("configs") or {}
        obs["create: returned config names only in this broker"] = sorted(configs)
        for key in ("retention.ms", "cleanup.policy", "min.insync.replicas", "segment.bytes"):
            c = configs.get(key) or {}
            obs[f"create: returned {key}"] = (c.get("value"), c.get("config_source"), c.get("read_only"))
        obs["create again"] = kp_outcome(lambda: adm.create_topics([KNewTopic(topic, 2, 1)]))
        obs["create bad config"] = kp_outcome(
            lambda: adm.create_topics([KNewTopic(unique("kp"), 1, 1, topic_configs={"retention.ms": "x"})]))
        obs["delete unknown topic"] = kp_outcome(lambda: adm.delete_topics([unique("none")]))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and topic not in adm.list_topics():
            time.sleep(0.1)
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        for i in range(6):
            producer.send(topic, f"v{i}".encode(), partition=i % 2, timestamp_ms=1_700_000_000_000 + i)
        producer.flush(15)
        producer.close()
        group = unique("kpg")
        consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                                 enable_auto_commit=False, consumer_timeout_ms=15000)
        got = []
        for msg in consumer:
            got.append(msg.value)
            if len(got) == 6:
                break
        consumer.commit()
        obs["group read"] = sorted(got)
        tps = [KTP(topic, 0), KTP(topic, 1)]
        obs["end offsets"] = sorted(consumer.end_offsets(tps).values())
        found = consumer.offsets_for_times({KTP(topic, 1): 1_700_000_000_002})
        obs["offsets_for_times p1 @+2"] = [(v.offset, v.timestamp) for v in found.values() if v]
        consumer.close()
        offsets = kp_outcome(lambda: adm.list_group_offsets(group))
        obs["committed (partition, offset, leader epoch)"] = sorted(
            (tp.partition, om.offset, om.leader_epoch) for per in offsets.values() for tp, om in per.items()
        ) if isinstance(offsets, dict) else offsets
        gone = kp_outcome(lambda: adm.delete_groups([unique("nog")]))
        obs["delete groups: unknown"] = sorted(map(str, gone.values())) if isinstance(gone, dict) else gone
    finally:
        adm.close()
    return obs


SCENARIOS: dict[str, Callable[[str], Observations]] = {
    "kafka_python": kafka_python,
    "protocol_errors": protocol_errors,
    "admin_misc": admin_misc,
    "topic_errors": topic_errors, "offsets": offsets, "configs": configs, "groups": groups,
    "produce_errors": produce_errors,
}


def compare(kafka: Observations, moldau: Observations) -> dict[str, tuple[object, object]]:
    """{observation: (kafka's value, moldau's value)} for every observation that differs.
    A list of names (config names) is compared as sets: each side's extras are the value."""
    out: dict[str, tuple[object, object]] = {}
    for key in sorted(set(kafka) | set(moldau)):
        k, m = kafka.get(key), moldau.get(key)
        if key.endswith("config names only in this broker") and isinstance(k, list) and isinstance(m, list):
            k, m = sorted(set(k) - set(m)), sorted(set(m) - set(k))
            if k or m:
                out[key] = (k, m)
            continue
        if k != m:
            out[key] = (k, m)
    return out
