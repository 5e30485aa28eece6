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


SCENARIOS: dict[str, Callable[[str], Observations]] = {
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
