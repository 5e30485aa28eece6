"""Listeners in a cluster: each broker registers one endpoint per listener, Metadata
answers with those of the listener the client came in on, and replication runs over
the inter-broker listener. Two brokers and etcd: ~15-25 s."""

from __future__ import annotations

import uuid

from confluent_kafka.admin import (
    NewTopic,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from .broker_process import free_port
from .etcd_process import SESSION_MS, ClusterBroker
from .kafka_helpers import (
    admin_client,
    assert_delivered,
    assert_records,
    confluent_consume,
    confluent_produce,
    sample_records,
    unique_topic,
    wait_until,
)

JAAS = 'org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret";'
SASL = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN", "sasl.username": "alice",
        "sasl.password": "alice-secret"}


def test_metadata_per_listener_and_replication_over_the_inter_broker_listener(etcd) -> None:
    url = f"{etcd.url}/it-{uuid.uuid4().hex[:8]}"
    brokers, sasl_ports = [], {}
    try:
        for broker_id in (1, 2):
            broker = ClusterBroker(broker_id, url, {"broker.session.timeout.ms": SESSION_MS})
            sasl_ports[broker_id] = free_port()
            broker.settings.update({
                "listeners": f"INTERNAL://127.0.0.1:{broker.port},CLIENTS://127.0.0.1:{sasl_ports[broker_id]}",
                "listener.security.protocol.map": "INTERNAL:PLAINTEXT,CLIENTS:SASL_PLAINTEXT",
                "inter.broker.listener.name": "INTERNAL",
                "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
                "sasl.jaas.config": JAAS,
            })
            brokers.append(broker)
            broker.start()
        clients = f"127.0.0.1:{sasl_ports[1]}"
        admin = admin_client(clients, **SASL)
        wait_until(lambda: len(admin.list_topics(timeout=10).brokers) == 2, 20, message="both brokers listed")
        listed = {b.id: (b.host, b.port) for b in admin.list_topics(timeout=10).brokers.values()}
        assert listed == {i: ("127.0.0.1", p) for i, p in sasl_ports.items()}
        internal = {b.id: b.port for b in admin_client(brokers[0].bootstrap).list_topics(timeout=10).brokers.values()}
        assert internal == {1: brokers[0].port, 2: brokers[1].port}
        topic = unique_topic("rf2")
        admin.create_topics([NewTopic(topic, 1, 2)])[topic].result(timeout=20)
        recs = sample_records(20, seed=5)
        wait_until(lambda: all(p.leader >= 0 and len(p.isrs) == 2 for p in
                               admin.list_topics(topic, timeout=5).topics[topic].partitions.values()), 20,
                   message="both replicas in sync")
        assert_delivered(confluent_produce(clients, topic, recs, acks="all", **SASL))
        assert_records(confluent_consume(f"127.0.0.1:{sasl_ports[2]}", topic, len(recs), **SASL), recs)
        # a SCRAM credential set through broker 1 is kept in etcd and known to broker 2
        upsert = UserScramCredentialUpsertion("carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
                                              b"carol-secret")
        internal_admin = admin_client(brokers[0].bootstrap)
        internal_admin.alter_user_scram_credentials([upsert])["carol"].result(timeout=15)
        scram = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
                 "sasl.username": "carol", "sasl.password": "carol-secret"}
        only_broker2 = admin_client(f"127.0.0.1:{sasl_ports[2]}", **scram)
        wait_until(lambda: only_broker2.list_topics(topic, timeout=5).topics[topic].error is None, 15,
                   message="carol authenticated on broker 2")
    finally:
        for broker in brokers:
            broker.dispose()
