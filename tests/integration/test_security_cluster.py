"""Listeners in a cluster: each broker registers one endpoint per listener, Metadata
answers with those of the listener the client came in on, and replication runs over
the inter-broker listener, PLAINTEXT or mutual TLS. Two brokers and etcd per test:
~10-25 s each."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import (
    NewTopic,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from kafka.admin import KafkaAdminClient
from kafka.admin import NewTopic as KpNewTopic

from .broker_process import free_port
from .etcd_process import SESSION_MS, ClusterBroker
from .kafka_helpers import (
    admin_client,
    assert_delivered,
    assert_records,
    confluent_consume,
    confluent_produce,
    read_to_end,
    sample_records,
    unique_topic,
    wait_until,
)
from .tls_certs import make_pki

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


@contextlib.contextmanager
def _two_brokers_over_internal_listener(etcd, protocol: str, settings: dict[str, str]) -> Iterator[list[ClusterBroker]]:
    """Brokers 1 and 2, each with a PLAINTEXT listener for clients and an INTERNAL one
    of ``protocol`` for replication, holding the broker certificate of a fresh PKI
    (plus ``settings``); both disposed and the PKI removed after."""
    url = f"{etcd.url}/it-{uuid.uuid4().hex[:8]}"
    folder = Path(tempfile.mkdtemp(prefix="moldau-it-pki-"))
    pki = make_pki(folder)
    brokers: list[ClusterBroker] = []
    try:
        for broker_id in (1, 2):
            broker = ClusterBroker(broker_id, url, {"broker.session.timeout.ms": SESSION_MS})
            broker.settings.update({
                "listeners": f"PLAINTEXT://127.0.0.1:{broker.port},INTERNAL://127.0.0.1:{free_port()}",
                "listener.security.protocol.map": f"PLAINTEXT:PLAINTEXT,INTERNAL:{protocol}",
                "inter.broker.listener.name": "INTERNAL",
                "ssl.keystore.location": str(pki.broker_keystore),
                "ssl.truststore.location": str(pki.ca),
                **settings,
            })
            brokers.append(broker)
            broker.start()
        yield brokers
    finally:
        for broker in brokers:
            broker.dispose()
        shutil.rmtree(folder, ignore_errors=True)


def test_replication_over_a_mutual_tls_inter_broker_listener(etcd) -> None:
    """Replica fetchers connect to the leader's SSL listener (ssl.client.auth=required)
    and present the broker's own certificate."""
    with _two_brokers_over_internal_listener(etcd, "SSL", {"listener.name.internal.ssl.client.auth": "required"}) as brokers:
        admin = admin_client(brokers[0].bootstrap)
        wait_until(lambda: len(admin.list_topics(timeout=10).brokers) == 2, 20, message="both brokers listed")
        topic = unique_topic("mtls")
        admin.create_topics([NewTopic(topic, 2, 2)])[topic].result(timeout=20)
        wait_until(lambda: all(p.leader >= 0 and len(p.isrs) == 2 for p in
                               admin.list_topics(topic, timeout=5).topics[topic].partitions.values()), 30,
                   message="both replicas of both partitions in sync over TLS")
        for partition in (0, 1):
            recs = sample_records(10, seed=partition)
            assert_delivered(confluent_produce(brokers[0].bootstrap, topic, recs, partition=partition, acks="all"))
            assert_records(confluent_consume(brokers[1].bootstrap, topic, len(recs), partition=partition), recs)


def test_replication_over_a_sasl_ssl_inter_broker_listener(etcd) -> None:
    """Replica fetchers authenticate with sasl.mechanism.inter.broker.protocol=PLAIN and the
    listener's JAAS username/password, over TLS."""
    jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" '
            'password="broker-secret" user_broker="broker-secret";')
    with _two_brokers_over_internal_listener(etcd, "SASL_SSL", {
        "sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "listener.name.internal.plain.sasl.jaas.config": jaas,
    }) as brokers:
        admin = admin_client(brokers[0].bootstrap)
        wait_until(lambda: len(admin.list_topics(timeout=10).brokers) == 2, 20, message="both brokers listed")
        topic = unique_topic("sasl")
        admin.create_topics([NewTopic(topic, 2, 2)])[topic].result(timeout=20)
        wait_until(lambda: all(p.leader >= 0 for p in
                               admin.list_topics(topic, timeout=5).topics[topic].partitions.values()), 20,
                   message="leaders")
        for partition in (0, 1):  # acks=all: both replicas fetched, over SASL_SSL
            recs = sample_records(10, seed=partition)
            assert_delivered(confluent_produce(brokers[0].bootstrap, topic, recs, partition=partition, acks="all"))
        for broker in brokers:  # one is not the controller: its create is forwarded over SASL_SSL
            forwarded = unique_topic("fwd")
            pinned = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=20000)
            pinned._controller_id = broker.broker_id  # kafka-python sends it to this broker
            try:
                pinned.create_topics([KpNewTopic(forwarded, 1, 2)])
            finally:
                pinned.close()
            wait_until(lambda name=forwarded: name in admin.list_topics(timeout=5).topics, 20, message="created")
        # a transaction over both leaders: the leader that does not coordinate the id
        # verifies with the coordinator, and the markers go, over SASL_SSL
        p = Producer({"bootstrap.servers": brokers[0].bootstrap, "transactional.id": "over-sasl-ssl"})
        p.init_transactions(30)
        for commit in (True, False):
            p.begin_transaction()
            for partition in (0, 1):
                p.produce(topic, b"txn-%s-%d" % (b"c" if commit else b"a", partition), partition=partition)
            p.commit_transaction(30) if commit else (p.flush(10), p.abort_transaction(30))
        read = read_to_end(brokers[1].bootstrap, topic, 2)  # after the acks=all records above
        assert sorted(v for v in read if v and v.startswith(b"txn-")) == [b"txn-c-0", b"txn-c-1"]
        logs = brokers[0].log_text() + brokers[1].log_text()
        assert "SASL authentication failed" not in logs and "before SASL authentication" not in logs
        assert "AddPartitionsToTxn (verify)" not in logs and "WriteTxnMarkers to broker" not in logs
