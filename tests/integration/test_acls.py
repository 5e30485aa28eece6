"""ACLs with real clients: what a principal without ACLs may not do, and what ACLs allow.

Until SASL lands every plaintext connection is ``User:ANONYMOUS``, so these tests give
and take ``User:ANONYMOUS`` rights, and tell hosts apart with ACLs on addresses the test
client does or does not connect from (127.0.0.1). The broker is set up once per module
as a super user's broker (to create the ACLs), then restarted with no super users: the
ACLs come back from the metadata store. Cost: one broker, two starts, ~15 s.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from .conftest import _dispose, _new_broker
from .kafka_helpers import (
    admin_client,
    confluent_produce,
    producer_conf,
    sample_records,
    wait_until,
)

ANON = "User:ANONYMOUS"
ALLOW, DENY = AclPermissionType.ALLOW, AclPermissionType.DENY
LITERAL, PREFIXED = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
STANDARD = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


def _acl(rtype, name, op, permission=ALLOW, pattern=LITERAL, host="*", principal=ANON) -> AclBinding:
    return AclBinding(rtype, name, pattern, principal, host, op, permission)


BASE_ACLS = [
    _acl(ResourceType.BROKER, "kafka-cluster", AclOperation.ALL),  # admin rights (ACLs, topics)
    _acl(ResourceType.TOPIC, "ok-", AclOperation.WRITE, pattern=PREFIXED),
    _acl(ResourceType.TOPIC, "ok-", AclOperation.READ, pattern=PREFIXED),
    _acl(ResourceType.GROUP, "ok-", AclOperation.READ, pattern=PREFIXED),
    _acl(ResourceType.TOPIC, "ok-denied", AclOperation.READ, DENY, host="127.0.0.1"),
    _acl(ResourceType.TOPIC, "elsewhere", AclOperation.ALL, host="10.9.9.9"),
    _acl(ResourceType.TRANSACTIONAL_ID, "ok-", AclOperation.WRITE, pattern=PREFIXED),
]
TOPICS = ["ok-data", "ok-denied", "secret", "elsewhere"]


@pytest.fixture(scope="module")
def secured():
    b = _new_broker({"authorizer.class.name": STANDARD, "super.users": ANON}, "acls")
    try:
        admin = admin_client(b.bootstrap)
        for f in admin.create_acls(BASE_ACLS, request_timeout=15).values():
            f.result(timeout=15)
        futures = admin.create_topics([NewTopic(t, 1, 1) for t in TOPICS], request_timeout=15)
        for f in futures.values():
            f.result(timeout=15)
        b.stop()
        b.settings.pop("super.users")  # from now on ANONYMOUS has only what the ACLs give
        b.start()
        yield b
    finally:
        _dispose(b)


def _produce_error(bootstrap: str, topic: str) -> KafkaError | None:
    results = confluent_produce(bootstrap, topic, sample_records(1), flush_timeout=20, **{"message.timeout.ms": 8000})
    return results[0][0]


def _assert_consume_refused(bootstrap: str, topic: str) -> None:
    """A group consumer (in a group the ACLs allow) is told TOPIC_AUTHORIZATION_FAILED."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"ok-{uuid.uuid4().hex[:6]}",
                  "auto.offset.reset": "earliest"})
    codes: set[int] = set()
    try:
        c.subscribe([topic])
        wait_until(lambda: codes.update(m.error().code() for m in [c.poll(0.5)] if m is not None and m.error())
                   or KafkaError.TOPIC_AUTHORIZATION_FAILED in codes, 20, message=f"a refused consume of {topic}")
    finally:
        c.close()


def test_the_acls_survive_a_restart_and_are_described(secured) -> None:
    admin = admin_client(secured.bootstrap)
    found = admin.describe_acls(AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                                 AclOperation.ANY, AclPermissionType.ANY), request_timeout=10)
    assert set(found.result(timeout=10)) == set(BASE_ACLS)
    match = AclBindingFilter(ResourceType.TOPIC, "ok-denied", ResourcePatternType.MATCH, None, None,
                             AclOperation.ANY, AclPermissionType.ANY)
    assert set(admin.describe_acls(match, request_timeout=10).result(timeout=10)) == {
        b for b in BASE_ACLS if b.restype == ResourceType.TOPIC and b.name in ("ok-", "ok-denied")}


def test_prefixed_allow_lets_a_client_produce_and_consume(secured) -> None:
    results = confluent_produce(secured.bootstrap, "ok-data", sample_records(3))
    assert [r[0] for r in results] == [None] * 3
    c = Consumer({"bootstrap.servers": secured.bootstrap, "group.id": "ok-group", "auto.offset.reset": "earliest"})
    try:
        c.subscribe(["ok-data"])
        got = []
        wait_until(lambda: got.extend(m for m in [c.poll(0.5)] if m is not None and not m.error()) or len(got) >= 3,
                   30, message="three records through a group the ACLs allow")
        c.commit(asynchronous=False)
    finally:
        c.close()


def test_no_acl_means_no_produce_and_no_consume(secured) -> None:
    err = _produce_error(secured.bootstrap, "secret")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    _assert_consume_refused(secured.bootstrap, "secret")  # (refused by its metadata: not describable)


def test_deny_by_host_beats_the_prefixed_allow(secured) -> None:
    assert _produce_error(secured.bootstrap, "ok-denied") is None  # WRITE is not denied
    _assert_consume_refused(secured.bootstrap, "ok-denied")  # (refused by the fetch itself)
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KafkaTopicPartition
    from kafka.errors import TopicAuthorizationFailedError

    consumer = KafkaConsumer(bootstrap_servers=secured.bootstrap, auto_offset_reset="earliest")
    try:
        consumer.assign([KafkaTopicPartition("ok-denied", 0)])
        with pytest.raises(TopicAuthorizationFailedError):
            for _ in range(10):
                consumer.poll(1000)
    finally:
        consumer.close()


def test_an_acl_for_another_host_does_not_apply(secured) -> None:
    err = _produce_error(secured.bootstrap, "elsewhere")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_metadata_hides_topics_one_may_not_describe(secured) -> None:
    topics = set(admin_client(secured.bootstrap).list_topics(timeout=10).topics)
    assert {"ok-data", "ok-denied"} <= topics  # READ/WRITE imply DESCRIBE; a READ deny does not deny it
    assert not topics & {"secret", "elsewhere"}


def test_a_group_without_acl_is_refused(secured) -> None:
    c = Consumer({"bootstrap.servers": secured.bootstrap, "group.id": "other-group", "auto.offset.reset": "earliest"})
    errors: list[int] = []
    try:
        c.subscribe(["ok-data"])

        def refused() -> bool:
            try:
                m = c.poll(0.5)
                if m is not None and m.error():
                    errors.append(m.error().code())
            except KafkaException as exc:
                errors.append(exc.args[0].code())
            return KafkaError.GROUP_AUTHORIZATION_FAILED in errors

        wait_until(refused, 20, message="GROUP_AUTHORIZATION_FAILED for a group without ACLs")
    finally:
        c.close()


def test_creating_a_topic_needs_create(secured) -> None:
    # ANONYMOUS holds ALL on the cluster, so it may create; revoke that and it may not
    admin = admin_client(secured.bootstrap)
    cluster_all = BASE_ACLS[0]
    flt = AclBindingFilter(ResourceType.BROKER, "kafka-cluster", LITERAL, ANON, "*", AclOperation.ALL, ALLOW)
    try:
        deleted = admin.delete_acls([flt], request_timeout=10)[flt].result(timeout=10)
        assert deleted == [cluster_all]
        name = f"new-{uuid.uuid4().hex[:6]}"
        with pytest.raises(KafkaException) as refused:
            admin.create_topics([NewTopic(name, 1, 1)], request_timeout=10)[name].result(timeout=10)
        assert refused.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
        # ... and without ALTER on the cluster, no more ACL changes either
        with pytest.raises(KafkaException) as acl_refused:
            admin.create_acls([cluster_all], request_timeout=10)[cluster_all].result(timeout=10)
        assert acl_refused.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    finally:
        secured.stop()
        secured.settings["super.users"] = ANON
        secured.start()
        admin = admin_client(secured.bootstrap)
        admin.create_acls([cluster_all], request_timeout=10)[cluster_all].result(timeout=10)
        secured.stop()
        secured.settings.pop("super.users")
        secured.start()


def test_kafka_python_gets_the_authorization_errors(secured) -> None:
    from kafka import KafkaProducer
    from kafka.errors import TopicAuthorizationFailedError

    producer = KafkaProducer(bootstrap_servers=secured.bootstrap, max_block_ms=10000, retries=0)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send("secret", b"x").get(timeout=15)
        assert producer.send("ok-data", b"y").get(timeout=15).offset >= 0
    finally:
        producer.close(timeout=5)


def test_without_an_authorizer_acl_requests_answer_security_disabled(broker) -> None:
    admin = admin_client(broker.bootstrap)
    binding = BASE_ACLS[1]
    with pytest.raises(KafkaException) as refused:
        admin.create_acls([binding], request_timeout=10)[binding].result(timeout=10)
    assert refused.value.args[0].code() == KafkaError.SECURITY_DISABLED
    # and everything is allowed, as before
    p = Producer(producer_conf(broker.bootstrap))
    p.produce("anything-goes", b"v")
    assert p.flush(20) == 0


def test_named_users_get_their_own_acls() -> None:
    """alice may write ``alice-`` topics, bob may not; alice cannot read them back."""
    from .broker_process import Broker, free_port

    port = free_port()
    jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
            'user_admin="admin-secret" user_alice="alice-secret" user_bob="bob-secret";')
    b = Broker({}, name="named-users")
    # Settings set directly: make_broker's keyword form turns "_" into ".", and the
    # listener name sasl_plaintext has one. The PLAINTEXT listener is the test
    # harness's readiness probe; User:ANONYMOUS holds no ACL there.
    b.settings.update({
        "listeners": f"PLAINTEXT://127.0.0.1:{b.port},SASL_PLAINTEXT://127.0.0.1:{port}",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas,
        "authorizer.class.name": STANDARD,
        "super.users": "User:admin",
    })
    b.start()
    try:
        _named_users_scenario(b, port)
    finally:
        _dispose(b)


def _named_users_scenario(b: Any, port: int) -> None:
    bootstrap = f"127.0.0.1:{port}"

    def conf(user: str) -> dict[str, object]:
        return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN", "sasl.username": user,
                "sasl.password": f"{user}-secret"}

    admin = admin_client(bootstrap, **conf("admin"))
    acl = _acl(ResourceType.TOPIC, "alice-", AclOperation.WRITE, pattern=PREFIXED, principal="User:alice")
    admin.create_acls([acl], request_timeout=10)[acl].result(timeout=10)
    admin.create_topics([NewTopic("alice-t", 1, 1)], request_timeout=10)["alice-t"].result(timeout=10)
    ok = confluent_produce(bootstrap, "alice-t", sample_records(1), **conf("alice"))
    assert ok[0][0] is None
    refused = confluent_produce(bootstrap, "alice-t", sample_records(1), **{**conf("bob"), "message.timeout.ms": 8000})
    assert refused[0][0] is not None and refused[0][0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert b.is_running()


def test_aiokafka_gets_the_authorization_errors(secured) -> None:
    import asyncio

    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import TopicAuthorizationFailedError

    async def scenario() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=secured.bootstrap, request_timeout_ms=10000)
        await asyncio.wait_for(producer.start(), 15)
        try:
            with pytest.raises(TopicAuthorizationFailedError):
                await asyncio.wait_for(producer.send_and_wait("secret", b"x"), 15)
            assert (await asyncio.wait_for(producer.send_and_wait("ok-data", b"y"), 15)).offset >= 0
        finally:
            await asyncio.wait_for(producer.stop(), 15)

    asyncio.run(scenario())


def test_authorized_operations_are_reported(secured) -> None:
    from confluent_kafka import TopicCollection

    admin = admin_client(secured.bootstrap)
    described = admin.describe_topics(TopicCollection(["ok-data"]), request_timeout=10,
                                      include_authorized_operations=True)["ok-data"].result(timeout=10)
    assert set(described.authorized_operations) == {AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE}
    cluster = admin.describe_cluster(request_timeout=10, include_authorized_operations=True).result(timeout=10)
    assert AclOperation.ALTER in set(cluster.authorized_operations)  # ANONYMOUS holds ALL on the cluster
    group = f"ok-{uuid.uuid4().hex[:6]}"
    c = Consumer({"bootstrap.servers": secured.bootstrap, "group.id": group, "auto.offset.reset": "earliest"})
    try:
        c.subscribe(["ok-data"])
        wait_until(lambda: c.poll(0.5) is not None or bool(c.assignment()), 20, message="the group formed")
        groups = admin.describe_consumer_groups([group], request_timeout=10, include_authorized_operations=True)
        assert set(groups[group].result(timeout=10).authorized_operations) == {AclOperation.READ, AclOperation.DESCRIBE}
    finally:
        c.close()


def test_transactions_need_write_on_the_transactional_id(secured) -> None:
    refused = Producer({"bootstrap.servers": secured.bootstrap, "transactional.id": "nope-1"})
    with pytest.raises(KafkaException) as error:
        refused.init_transactions(15)
    assert error.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    allowed = Producer({"bootstrap.servers": secured.bootstrap, "transactional.id": f"ok-{uuid.uuid4().hex[:6]}"})
    allowed.init_transactions(15)
    allowed.begin_transaction()
    allowed.produce("ok-data", b"in a transaction")
    allowed.commit_transaction(15)
