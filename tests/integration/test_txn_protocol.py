"""Transaction APIs at the wire level, requests encoded by our codec and sent raw:
what is advertised, FindCoordinator for transactional ids (one key and KIP-699's
batch), and Kafka's error codes for bad input -- an invalid timeout, an unknown
producer id, unknown partitions, EndTxn with nothing begun, KIP-890's verifyOnly, and
a fenced producer told PRODUCER_FENCED or, in versions before KIP-588,
INVALID_PRODUCER_EPOCH. One broker for the module; about 5 s."""

from __future__ import annotations

import pytest

from .conftest import _dispose, _new_broker
from .kafka_helpers import create_topic
from .test_groups_protocol import Client

pytestmark = pytest.mark.timeout(60)

NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
NOT_ENOUGH_REPLICAS = 19
INVALID_REQUEST = 42
INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
INVALID_PRODUCER_ID_MAPPING = 49
INVALID_TRANSACTION_TIMEOUT = 50
OPERATION_NOT_ATTEMPTED = 55
PRODUCER_FENCED = 90
TRANSACTIONAL_ID_NOT_FOUND = 105
TOPIC = "txn-raw"


@pytest.fixture(scope="module")
def tbroker():
    b = _new_broker({"transaction.max.timeout.ms": 60000}, "txn-raw")
    create_topic(b.bootstrap, TOPIC, 2)
    yield b
    _dispose(b)


@pytest.fixture
def client(tbroker):
    c = Client(tbroker.bootstrap)
    yield c
    c.close()


def init(client: Client, txn_id: str, version: int = 1, timeout_ms: int = 10000, **fields) -> tuple[int, int, int]:
    for _ in range(100):  # the coordinator's partition may still be loading
        r = client.call(22, version, transactional_id=txn_id, transaction_timeout_ms=timeout_ms, **fields)
        if r.error_code not in (14, 51):
            return r.error_code, r.producer_id, r.producer_epoch
    raise AssertionError("InitProducerId kept answering retriable errors")


def add(client: Client, version: int, txn_id: str, pid: int, epoch: int, parts: list[tuple[str, int]]) -> dict:
    by_topic: dict[str, list[int]] = {}
    for t, p in parts:
        by_topic.setdefault(t, []).append(p)
    topics = [{"name": t, "partitions": ps} for t, ps in by_topic.items()]
    Request = client_codec(24).Request
    r = client.call(
        24, version, v3_and_below_transactional_id=txn_id, v3_and_below_producer_id=pid,
        v3_and_below_producer_epoch=epoch,
        v3_and_below_topics=[Request.of("v3_and_below_topics")(**t) for t in topics],
    )
    return {(t.name, p.partition_index): p.partition_error_code for t in r.results_by_topic_v3_and_below
            for p in t.results_by_partition}


def client_codec(key: int):
    from moldau.protocol.codec import codec_for
    from moldau.protocol.messages import ALL_APIS

    return codec_for(ALL_APIS[key])


def end(client: Client, version: int, txn_id: str, pid: int, epoch: int, committed: bool) -> int:
    return client.call(26, version, transactional_id=txn_id, producer_id=pid, producer_epoch=epoch,
                       committed=committed).error_code


def test_advertised_versions(client):
    r = client.call(18, 3, client_software_name="t", client_software_version="1")
    versions = {k.api_key: (k.min_version, k.max_version) for k in r.api_keys}
    assert versions[22] == (0, 5) and versions[24] == (0, 5) and versions[25] == (0, 4)
    assert versions[26] == (0, 5) and versions[28] == (0, 5)
    assert versions[65] == (0, 0) and versions[66] == (0, 2)


def test_find_coordinator_for_transactional_ids(client, tbroker):
    r = client.call(10, 3, key="some-txn", key_type=1)
    assert (r.error_code, r.port) == (NONE, int(tbroker.bootstrap.rsplit(":", 1)[1]))
    r = client.call(10, 4, key_type=1, coordinator_keys=["a", "b"])
    assert [(c.key, c.error_code) for c in r.coordinators] == [("a", NONE), ("b", NONE)]
    assert client.call(10, 3, key="x", key_type=7).error_code == INVALID_REQUEST


def test_txn_state_topic_takes_the_min_isr_as_set_and_one_broker_serves(client, tbroker):
    """As Kafka: ``__transaction_state`` gets min.insync.replicas =
    transaction.state.log.min.isr (default 2) as is, and a single broker (one replica)
    serves transactions all the same: the bound is min(min.insync.replicas, replicas)."""
    from confluent_kafka.admin import ConfigResource, ResourceType

    from .kafka_helpers import admin_client

    _, pid, epoch = init(client, "raw-min-isr")
    assert add(client, 3, "raw-min-isr", pid, epoch, [(TOPIC, 0)]) == {(TOPIC, 0): NONE}
    assert end(client, 3, "raw-min-isr", pid, epoch, False) == NONE
    res = ConfigResource(ResourceType.TOPIC, "__transaction_state")
    admin = admin_client(tbroker.bootstrap)  # kept alive until its future resolves
    configs = admin.describe_configs([res], request_timeout=10)[res].result(timeout=15)
    assert configs["min.insync.replicas"].value == "2"


def test_errors_for_bad_transactional_requests(client):
    assert init(client, "raw-1", timeout_ms=60001)[0] == INVALID_TRANSACTION_TIMEOUT
    assert init(client, "raw-1", timeout_ms=0)[0] == INVALID_TRANSACTION_TIMEOUT
    code, pid, epoch = init(client, "raw-1")
    assert (code, epoch) == (NONE, 0)
    assert end(client, 1, "raw-1", pid, 0, True) == INVALID_TXN_STATE  # nothing begun
    assert end(client, 1, "never-initialised", 5, 0, True) == INVALID_PRODUCER_ID_MAPPING
    assert add(client, 1, "raw-1", pid + 1, 0, [(TOPIC, 0)]) == {(TOPIC, 0): INVALID_PRODUCER_ID_MAPPING}
    assert add(client, 1, "raw-1", pid, 0, [(TOPIC, 0), ("no-such-topic", 0), (TOPIC, 9)]) == {
        (TOPIC, 0): OPERATION_NOT_ATTEMPTED,
        ("no-such-topic", 0): UNKNOWN_TOPIC_OR_PARTITION,
        (TOPIC, 9): UNKNOWN_TOPIC_OR_PARTITION,
    }
    assert add(client, 1, "raw-1", pid, 0, [(TOPIC, 0)]) == {(TOPIC, 0): NONE}

    # KIP-890 verifyOnly, as a partition leader would send it (v4+)
    Request = client_codec(24).Request
    Txn = Request.of("transactions")
    r = client.call(24, 4, transactions=[Txn(
        transactional_id="raw-1", producer_id=pid, producer_epoch=0, verify_only=True,
        topics=[Txn.of("topics")(name=TOPIC, partitions=[0, 1])],
    )])
    [result] = r.results_by_transaction
    assert {(p.partition_index, p.partition_error_code) for t in result.topic_results
            for p in t.results_by_partition} == {(0, NONE), (1, INVALID_TXN_STATE)}

    # a second incarnation: the open transaction is aborted, the old epoch fenced
    code, pid2, epoch2 = init(client, "raw-1")
    assert (code, pid2, epoch2) == (NONE, pid, 2)
    assert add(client, 1, "raw-1", pid, 0, [(TOPIC, 1)]) == {(TOPIC, 1): INVALID_PRODUCER_EPOCH}
    assert add(client, 2, "raw-1", pid, 0, [(TOPIC, 1)]) == {(TOPIC, 1): PRODUCER_FENCED}
    assert end(client, 1, "raw-1", pid, 0, False) == INVALID_PRODUCER_EPOCH
    assert end(client, 3, "raw-1", pid, 0, False) == PRODUCER_FENCED
    assert init(client, "raw-1", version=3, producer_id=pid, producer_epoch=0)[0] == INVALID_PRODUCER_EPOCH
    assert init(client, "raw-1", version=4, producer_id=pid, producer_epoch=0)[0] == PRODUCER_FENCED
    # KIP-360: the current producer asks for a bump
    assert init(client, "raw-1", version=4, producer_id=pid, producer_epoch=2) == (NONE, pid, 3)


def test_describe_and_list_transactions(client):
    _, pid, _ = init(client, "raw-listed")
    assert add(client, 3, "raw-listed", pid, 0, [(TOPIC, 1)]) == {(TOPIC, 1): NONE}
    r = client.call(65, 0, transactional_ids=["raw-listed", "raw-unknown"])
    listed, unknown = r.transaction_states
    assert (listed.error_code, listed.transaction_state, listed.producer_id) == (NONE, "Ongoing", pid)
    assert [(t.topic, list(t.partitions)) for t in listed.topics] == [(TOPIC, [1])]
    assert unknown.error_code == TRANSACTIONAL_ID_NOT_FOUND
    r = client.call(66, 1, state_filters=["Ongoing", "Nonsense"], producer_id_filters=[pid], duration_filter=-1)
    assert (r.error_code, list(r.unknown_state_filters)) == (NONE, ["Nonsense"])
    assert [(t.transactional_id, t.transaction_state) for t in r.transaction_states] == [("raw-listed", "Ongoing")]
    r = client.call(66, 1, state_filters=[], producer_id_filters=[pid], duration_filter=3_600_000)
    assert list(r.transaction_states) == []
    assert end(client, 3, "raw-listed", pid, 0, True) == NONE


def test_txn_offset_commit_is_verified_against_the_transaction(client):
    _, pid, _ = init(client, "raw-offsets")
    Request = client_codec(28).Request
    Topic = Request.of("topics")

    def commit(version: int, epoch: int) -> int:
        r = client.call(28, version, transactional_id="raw-offsets", group_id="raw-group", producer_id=pid,
                        producer_epoch=epoch, generation_id=-1, member_id="", group_instance_id=None,
                        topics=[Topic(name=TOPIC, partitions=[Topic.of("partitions")(
                            partition_index=0, committed_offset=7, committed_leader_epoch=-1,
                            committed_metadata="")])])
        return r.topics[0].partitions[0].error_code

    assert commit(3, 0) == INVALID_TXN_STATE  # AddOffsetsToTxn first, or no marker would ever come
    r = client.call(25, 3, transactional_id="raw-offsets", producer_id=pid, producer_epoch=0, group_id="raw-group")
    assert r.error_code == NONE
    assert commit(3, 0) == NONE
    assert init(client, "raw-offsets")[2] == 2  # a new incarnation aborts it and fences this one
    assert commit(2, 0) == INVALID_PRODUCER_EPOCH
    assert commit(3, 0) == PRODUCER_FENCED


def test_first_transactional_append_is_verified_by_the_leader(client):
    """KIP-890 part 1: a transactional batch that would open a transaction at a partition
    the coordinator has not added is refused (INVALID_TXN_STATE), and not appended."""
    import time

    from .raw_kafka import record_batch

    _, pid, epoch = init(client, "raw-verify")
    Request = client_codec(0).Request
    TopicData = Request.of("topic_data")

    def produce(seq: int) -> int:
        batch = record_batch([b"v%d" % seq], int(time.time() * 1000), producer_id=pid, producer_epoch=epoch,
                             base_sequence=seq, transactional=True)
        r = client.call(0, 3, transactional_id="raw-verify", acks=-1, timeout_ms=5000, topic_data=[
            TopicData(name=TOPIC, partition_data=[TopicData.of("partition_data")(index=1, records=batch)])])
        return r.responses[0].partition_responses[0].error_code

    assert produce(0) == INVALID_TXN_STATE  # never added to a transaction
    assert add(client, 3, "raw-verify", pid, epoch, [(TOPIC, 1)]) == {(TOPIC, 1): NONE}
    assert produce(0) == NONE  # sequence 0 again: the refused batch was not appended
    assert produce(1) == NONE
    assert end(client, 3, "raw-verify", pid, epoch, False) == NONE
    deadline = time.monotonic() + 10
    while (code := produce(2)) == NOT_ENOUGH_REPLICAS and time.monotonic() < deadline:
        time.sleep(0.05)  # the abort still being completed: retriable
    assert code == INVALID_TXN_STATE  # the transaction is over: a late batch opens none
