"""ACLs and quotas in a cluster: set on one broker, enforced by every broker (etcd watch).
Cost: etcd and two brokers, ~10 s."""

from __future__ import annotations

import socket

from confluent_kafka import KafkaError
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from . import raw_kafka as raw
from .kafka_helpers import admin_client, confluent_produce, sample_records, wait_until
from .test_quotas import alter_quotas, describe_quotas

STANDARD = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


def test_an_acl_created_on_one_broker_is_enforced_by_all(cluster) -> None:
    # allow.everyone.if.no.acl.found: replication (followers fetch as User:ANONYMOUS)
    # needs CLUSTER_ACTION otherwise, and the test wants one resource under ACLs only
    settings = {"authorizer.class.name": STANDARD, "allow.everyone.if.no.acl.found": "true"}
    one, two = cluster(1, **settings), cluster(2, **settings)
    admin_one, admin_two = admin_client(one.bootstrap), admin_client(two.bootstrap)
    admin_one.create_topics([NewTopic("guarded", 2, 2)], request_timeout=15)["guarded"].result(timeout=15)
    deny = AclBinding(ResourceType.TOPIC, "guarded", ResourcePatternType.LITERAL, "User:ANONYMOUS", "*",
                      AclOperation.WRITE, AclPermissionType.DENY)
    admin_one.create_acls([deny], request_timeout=10)[deny].result(timeout=10)
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                                  AclPermissionType.ANY)
    wait_until(lambda: admin_two.describe_acls(everything, request_timeout=10).result(timeout=10) == [deny], 10,
               message="the ACL on the other broker")
    # both partitions (one led by each broker, normally) refuse the write
    for partition in (0, 1):
        results = confluent_produce(two.bootstrap, "guarded", sample_records(1), partition=partition,
                                    **{"message.timeout.ms": 8000})
        assert results[0][0] is not None and results[0][0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # and quotas travel the same way
    assert alter_quotas(one.bootstrap, [("user", None)], {"consumer_byte_rate": 5000}) == [0]
    wait_until(lambda: describe_quotas(two.bootstrap, "user", 1, strict=True)
               == (0, [([("user", None)], {"consumer_byte_rate": 5000.0})]), 10,
               message="the default user's quota on the other broker")

    # ip entities too: broker two enforces a connection_creation_rate set through one
    assert alter_quotas(one.bootstrap, [("ip", "127.0.0.9")], {"connection_creation_rate": 1}) == [0]
    wait_until(lambda: describe_quotas(two.bootstrap, "ip")
               == (0, [([("ip", "127.0.0.9")], {"connection_creation_rate": 1.0})]), 10,
               message="the ip quota on the other broker")
    host, port = two.bootstrap.rsplit(":", 1)
    socks = [socket.create_connection((host, int(port)), timeout=10, source_address=("127.0.0.9", 0))
             for _ in range(12)]
    try:
        for i, sock in enumerate(socks):
            sock.sendall(raw.request(raw.API_VERSIONS, 0, i))
        answered = sum(1 for sock in socks if raw.read_response(sock) is not None)
    finally:
        for sock in socks:
            sock.close()
    assert 1 <= answered < 12, answered  # past the burst a window allows, closed unanswered
