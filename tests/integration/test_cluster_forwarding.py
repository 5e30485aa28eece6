"""Metadata writes received by a broker that is not the controller are forwarded to it
(issue 9; docs/08-cluster.md, "Forwarding to the controller").

Real clients talk to a broker that is not the controller: kafka-python's admin client
with its idea of the controller pinned to that broker (what a client with stale
metadata does after the controller moved), and confluent-kafka's AdminClient
bootstrapped to that broker only. What is proven: CreateTopics, CreatePartitions,
IncrementalAlterConfigs (topic and broker), ElectLeaders and DeleteTopics sent to the
non-controller take effect on every broker; a forwarded request that reaches a broker
which is not the controller is refused NOT_CONTROLLER and changes nothing; while the
controller is frozen the non-controller creates nothing itself and answers
REQUEST_TIMED_OUT within the request's timeout instead of hanging; and with the
controller killed (kill -9) during a burst of CreateTopics every create ends in success
or a retriable error, and the brokers end up agreeing on one consistent set of topics.

Cost: about 25-35 s on the 2-core machine (two clusters of three brokers, one freeze,
one kill -9).
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

from confluent_kafka.admin import NewTopic
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from moldau.protocol.messages import ALL_APIS
from moldau.replication.client import BrokerClient, codec_for

from .etcd_process import ClusterBroker
from .kafka_helpers import admin_client, unique_topic, wait_until
from .test_cluster_operations import _partitions, _start

NONE = 0
REQUEST_TIMED_OUT = 7
NOT_CONTROLLER = 41
TOPIC_ALREADY_EXISTS = 36
#: what a create may end with when the controller dies under it
RETRIABLE = {REQUEST_TIMED_OUT, NOT_CONTROLLER}
#: librdkafka's own errors for a request lost with its connection (_TRANSPORT, _TIMED_OUT):
#: it sends controller APIs to the controller Metadata names, so its creates in flight
#: when that broker is killed fail on its own connection, and may be retried
LOCAL_CONNECTION_ERRORS = {-195, -185}


def _controller(brokers: dict[int, ClusterBroker], ask: int) -> int:
    """The controller as broker ``ask``'s Metadata names it (-1: none)."""
    return admin_client(brokers[ask].bootstrap).list_topics(timeout=10).controller_id


def _names(broker: ClusterBroker) -> set[str]:
    """The topics ``broker`` lists (without naming one: that would auto-create it)."""
    return set(admin_client(broker.bootstrap).list_topics(timeout=10).topics)


def _pinned_admin(broker: ClusterBroker) -> KafkaAdminClient:
    """kafka-python's admin client, bootstrapped to ``broker`` and believing it the
    controller: its controller requests all go there."""
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=20000)
    admin._controller_id = broker.broker_id
    return admin


def _raw_create(broker: ClusterBroker, name: str, client_id: str, timeout_ms: int = 5000) -> int:
    """One CreateTopics v5 request to ``broker`` with ``client_id``; the topic's error code."""
    api = ALL_APIS[19]
    codec = codec_for(api)
    Topic = codec.Request.of("topics")
    request = codec.Request(
        topics=[Topic(name=name, num_partitions=1, replication_factor=1, assignments=[], configs=[])],
        timeout_ms=timeout_ms, validate_only=False,
    )

    async def send() -> int:
        client = BrokerClient(broker.host, broker.port, client_id)
        try:
            response = await client.request(api, 5, request, timeout=timeout_ms / 1000 + 10)
        finally:
            await client.close()
        return response.topics[0].error_code

    return asyncio.run(send())


def test_writes_sent_to_a_non_controller_take_effect_everywhere(cluster) -> None:
    brokers = _start(cluster)
    controller = _controller(brokers, 1)
    other = next(i for i in brokers if i != controller)
    admin = _pinned_admin(brokers[other])
    topic, doomed = unique_topic("fwd"), unique_topic("fwd-doomed")
    try:
        answer = admin.create_topics({topic: {"num_partitions": 2, "replication_factor": 2},
                                      doomed: {"num_partitions": 1, "replication_factor": 1}}, raise_errors=False)
        assert [t["error_code"] for t in answer["topics"]] == [NONE, NONE], answer
        for b in brokers.values():
            wait_until(lambda b=b: len(_partitions(b.bootstrap, topic)) == 2, timeout=10,
                       message=f"broker {b.broker_id} has the topic")
        admin._controller_id = other
        admin.create_partitions({topic: 3})
        admin._controller_id = other
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "123456"})],
                            incremental=True)
        admin._controller_id = other
        admin.delete_topics([doomed])
    finally:
        admin.close()
    for b in brokers.values():
        wait_until(lambda b=b: len(_partitions(b.bootstrap, topic)) == 3 and doomed not in _names(b),
                   timeout=10, message=f"broker {b.broker_id} sees the new partition and the deletion")
    # confluent-kafka bootstrapped to the non-controller: a broker config for the controller
    confluent = admin_client(brokers[other].bootstrap)
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry
    from confluent_kafka.admin import ConfigResource as CResource

    resource = CResource("BROKER", str(controller),
                         incremental_configs=[ConfigEntry("log.cleaner.backoff.ms", "16000",
                                                          incremental_operation=AlterConfigOpType.SET)])
    confluent.incremental_alter_configs([resource])[resource].result(timeout=20)
    topic_config = confluent.describe_configs([CResource("TOPIC", topic)])
    described = next(iter(topic_config.values())).result(timeout=20)
    assert described["retention.ms"].value == "123456"
    at_controller = admin_client(brokers[controller].bootstrap)
    broker_config = at_controller.describe_configs([CResource("BROKER", str(controller))])
    assert next(iter(broker_config.values())).result(timeout=20)["log.cleaner.backoff.ms"].value == "16000"

    # auto-creation on the non-controller (Metadata naming a new topic): by the controller
    auto = unique_topic("fwd-auto")
    wait_until(lambda: auto in admin_client(brokers[other].bootstrap).list_topics(topic=auto, timeout=10).topics
               and not admin_client(brokers[other].bootstrap).list_topics(topic=auto, timeout=10).topics[auto].error,
               timeout=10, message="auto-created")
    for b in brokers.values():
        wait_until(lambda b=b: auto in _names(b), timeout=10, message="auto-created everywhere")

    # a request forwarded to a broker that is not the controller is refused unseen
    stray = unique_topic("fwd-stray")
    assert _raw_create(brokers[other], stray, "moldau-forwarded-99") == NOT_CONTROLLER
    assert _raw_create(brokers[other], stray, "it-client") == NONE  # forwarded, created
    for b in brokers.values():
        wait_until(lambda b=b: stray in _names(b), timeout=10, message="created once")

    # controller frozen: the non-controller decides nothing itself, and answers in time
    os.kill(brokers[controller].pid, signal.SIGSTOP)
    try:
        frozen = unique_topic("fwd-frozen")
        started = time.monotonic()
        code = _raw_create(brokers[other], frozen, "it-client", timeout_ms=1500)
        took = time.monotonic() - started
        # decided by nobody while the controller is frozen (it may still act on the
        # request once it runs again: a timed-out request's outcome is unknown)
        assert all(frozen not in _names(brokers[i]) for i in brokers if i != controller)
    finally:
        os.kill(brokers[controller].pid, signal.SIGCONT)
    assert code == REQUEST_TIMED_OUT and took < 6, (code, took)


def test_controller_killed_during_a_burst_of_creates(cluster) -> None:
    brokers = _start(cluster)
    controller = _controller(brokers, 1)
    others = [i for i in brokers if i != controller]
    outcomes: dict[str, tuple[str, int | str]] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def kafka_python_burst() -> None:
        admin = _pinned_admin(brokers[others[0]])
        try:
            n = 0
            while not stop.is_set():
                name = f"burst-kp-{n}"
                n += 1
                admin._controller_id = others[0]
                try:
                    answer = admin.create_topics({name: {"num_partitions": 2, "replication_factor": 2}},
                                                 raise_errors=False)
                    code: int | str = answer["topics"][0]["error_code"]
                except Exception as exc:  # the client's own errors (none expected: its broker lives)
                    code = repr(exc)
                with lock:
                    outcomes[name] = ("kafka-python", code)
        finally:
            admin.close()

    def confluent_burst() -> None:
        admin = admin_client(brokers[others[1]].bootstrap)
        n = 0
        while not stop.is_set():
            name = f"burst-ck-{n}"
            n += 1
            future = admin.create_topics([NewTopic(name, 2, 2)], request_timeout=15)[name]
            try:
                future.result(timeout=30)
                code: int | str = NONE
            except Exception as exc:
                error = exc.args[0] if exc.args else None
                if error is not None and hasattr(error, "code"):
                    code = f"retriable:{error.code()}" if error.retriable() else error.code()
                else:
                    code = repr(exc)
            with lock:
                outcomes[name] = ("confluent", code)

    threads = [threading.Thread(target=kafka_python_burst), threading.Thread(target=confluent_burst)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(outcomes) >= 10, timeout=20, message="creates under way")
        brokers[controller].kill9()
        killed = time.monotonic()
        wait_until(lambda: _controller(brokers, others[0]) in others, timeout=15, message="a new controller")
        before = len(outcomes)
        wait_until(lambda: len(outcomes) >= before + 10, timeout=30, message="creates go on after the failover")
        after_kill = time.monotonic() - killed
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a create hung"

    # every create ended in success or a retriable error
    for name, (client, code) in outcomes.items():
        ok = code == NONE or code in RETRIABLE or (isinstance(code, str) and code.startswith("retriable:"))
        # a client that retried a create whose first attempt was lost with the controller
        ok = ok or (client == "confluent" and code in {TOPIC_ALREADY_EXISTS, *LOCAL_CONNECTION_ERRORS})
        assert ok, (name, client, code)

    # the end state: both survivors agree, every success exists, no topic is half-made
    def views() -> list[dict[str, tuple]]:
        out = []
        for i in others:
            meta = admin_client(brokers[i].bootstrap).list_topics(timeout=10).topics
            out.append({n: tuple(sorted((p, tuple(m.replicas)) for p, m in t.partitions.items()))
                        for n, t in meta.items() if n.startswith("burst-")})
        return out

    wait_until(lambda: (lambda v: v[0] == v[1])(views()), timeout=20, message="survivors agree")
    final = views()[0]
    for name, (client, code) in outcomes.items():
        if code in (NONE, TOPIC_ALREADY_EXISTS):
            assert name in final, (name, client)
    for name, partitions in final.items():
        assert [p for p, _ in partitions] == [0, 1] and all(len(r) == 2 for _, r in partitions), (name, partitions)
    led = lambda: all(  # noqa: E731
        p.leader in others
        for t in admin_client(brokers[others[0]].bootstrap).list_topics(timeout=10).topics.values()
        if t.topic.startswith("burst-") for p in t.partitions.values()
    )
    wait_until(led, timeout=20, message="every partition led by a live broker")
    counts = {code: sum(1 for _, c in outcomes.values() if c == code) for _, code in outcomes.values()}
    print(f"creates: {len(outcomes)}, outcomes {counts}, went on {after_kill:.1f} s after the kill")
