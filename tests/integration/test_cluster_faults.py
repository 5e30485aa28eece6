"""Faults of a cluster with real processes: a leader cut off from everything, etcd lost
and restarted, under an idempotent acks=all producer that never pauses.

What is proven here: a leader frozen (SIGSTOP) while its followers had stopped fetching
holds an unacknowledged tail; the others elect a new leader once its session ends and
the producer goes on there; resumed (SIGCONT), the old leader answers the requests
that queued up meanwhile with NOT_LEADER_OR_FOLLOWER (its session lapsed: it fenced
itself, so even an acks=1 write is refused rather than taken and lost), rejoins as a
follower, truncates its tail, and all three logs end identical, with every
acknowledged record present once and in order. etcd killed and restarted on its data
under load: once no session can be trusted the brokers acknowledge nothing more, and
after etcd is back producing and consuming (in a consumer group, whose coordinator
unloaded the group while fenced and reloads it) resume with nothing acknowledged lost.
(A consumer group through the kill -9 of its coordinator: test_replication.py.)

A leader killed with kill -9 is replaced long before its session could time out (its
followers find its port refusing connections and end its session).

Cost: about 15 s, 15 s and 8 s on two idle cores (three brokers each; the etcd test
has its own etcd).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from .cluster_helpers import (
    AckedWriter,
    Reader,
    committed,
    create_replicated,
    fully_replicated,
    log_values,
    losses,
    raw_produce,
    read_all,
    start_three,
)
from .etcd_process import SESSION_MS, ClusterBroker, running_etcd
from .kafka_helpers import admin_client, unique_topic, wait_until

NOT_LEADER_OR_FOLLOWER = 6
#: the producer's requests stuck at a frozen leader give up after this (librdkafka
#: times an in-flight produce out by socket.timeout.ms, 60 s by default)
STUCK_TIMEOUT_MS = 3000


def _equal_logs(brokers: dict[int, ClusterBroker], topic: str) -> list | None:
    logs = [log_values(b.data_dir, topic) for b in brokers.values()]
    return logs[0] if all(x == logs[0] for x in logs) else None


def test_a_frozen_leader_fences_itself_and_truncates_its_tail(cluster) -> None:
    brokers = start_three(cluster)
    topic = create_replicated(brokers[1].bootstrap, unique_topic("frozen"))
    old = wait_until(lambda: fully_replicated(brokers, topic, [1, 2, 3]), timeout=20, message="ISR 1,2,3")
    followers = [i for i in brokers if i != old]
    writer = AckedWriter(",".join(b.bootstrap for b in brokers.values()), topic,
                         **{"request.timeout.ms": STUCK_TIMEOUT_MS, "socket.timeout.ms": STUCK_TIMEOUT_MS})
    writer.start()
    pool = ThreadPoolExecutor(2)
    try:
        wait_until(lambda: len(writer.acks_after(0)) > 100, timeout=30, message="writes flowing")
        # the followers stop fetching: what the leader takes now is not replicated
        for i in followers:
            os.kill(brokers[i].pid, signal.SIGSTOP)
        try:
            # a fetch a follower sent before it stopped may still wait at the leader: the
            # first append answers it (into the stopped follower's socket), the next
            # append reaches no follower
            assert raw_produce(brokers[old], topic, acks=1, value=b"-4") == 0
            time.sleep(0.3)
            assert raw_produce(brokers[old], topic, acks=1, value=b"-1") == 0  # the leader alone has it
            os.kill(brokers[old].pid, signal.SIGSTOP)
            frozen = time.monotonic()
        finally:
            for i in followers:
                os.kill(brokers[i].pid, signal.SIGCONT)
        mark = brokers[old].log_size()
        try:
            # requests that reach the frozen leader wait in its socket
            queued = [pool.submit(raw_produce, brokers[old], topic, 1, b"-2"),
                      pool.submit(raw_produce, brokers[old], topic, -1, b"-3")]
            survivors = {i: brokers[i] for i in followers}
            new = wait_until(lambda: fully_replicated(survivors, topic, followers), timeout=SESSION_MS / 1000 + 30,
                             interval=0.2, message="a new leader once the frozen one's session ended")
            wait_until(lambda: len(writer.acks_after(frozen)) > 100, timeout=60,
                       message="acknowledged writes on the new leader")
        finally:
            os.kill(brokers[old].pid, signal.SIGCONT)
        # its session had lapsed: it fenced itself before a successor could be elected
        assert [f.result(timeout=30) for f in queued] == [NOT_LEADER_OR_FOLLOWER] * 2
        wait_until(lambda: fully_replicated(brokers, topic, [1, 2, 3]) == new, timeout=40, interval=0.2,
                   message="the old leader back in the ISR as a follower")
        text = brokers[old].log_text(mark)
        assert "session lapsed" in text and f"{topic}-0: truncating from" in text, text[-3000:]
        # frozen is not dead: its port did not refuse, its lease expired by itself
        assert not any("refuses connections" in brokers[i].log_text() for i in followers)
        wait_until(lambda: len(writer.acks_after(time.monotonic() - 0.5)) > 50, timeout=30,
                   message="writes flowing after the old leader rejoined")
    finally:
        with contextlib.suppress(ProcessLookupError):
            for b in brokers.values():
                os.kill(b.pid, signal.SIGCONT)
        writer.stop_flag.set()
        writer.join(60)
        pool.shutdown(wait=False)
    assert not writer.is_alive()
    logs = wait_until(lambda: _equal_logs(brokers, topic), timeout=20, message="three identical logs")
    values = read_all(brokers[old].bootstrap, topic)
    assert [int(v) for _, v in logs] == values
    lost, duplicated, ordered = losses(writer, values)
    print(f"frozen leader: {writer.sent} sent, {len(writer.acked)} acknowledged, {len(lost)} lost, "
          f"{len(duplicated)} duplicated")
    assert not lost, f"lost acknowledged records: {lost[:20]}"
    assert not duplicated, f"duplicated records: {duplicated[:20]}"
    assert ordered, "acknowledged records out of order"
    assert not {-1, -2, -3} & set(values), "the old leader's unacknowledged tail survived"


def test_etcd_restarted_under_load() -> None:
    with running_etcd() as etcd:
        url = f"{etcd.url}/it-{uuid.uuid4().hex[:8]}"
        brokers = {i: ClusterBroker(i, url, {"broker.session.timeout.ms": SESSION_MS,
                                             "replica.lag.time.max.ms": 10000}) for i in (1, 2, 3)}
        writer = reader = None
        try:
            for b in brokers.values():
                b.start()
            wait_until(lambda: all(len(admin_client(b.bootstrap).list_topics(timeout=10).brokers) == 3
                                   for b in brokers.values()), timeout=20, message="three brokers listed")
            topic = create_replicated(brokers[1].bootstrap, unique_topic("etcd"))
            wait_until(lambda: fully_replicated(brokers, topic, [1, 2, 3]), timeout=20, message="ISR 1,2,3")
            bootstrap = ",".join(b.bootstrap for b in brokers.values())
            writer = AckedWriter(bootstrap, topic)
            group = f"g-{topic}"
            reader = Reader(bootstrap, topic, group=group)  # its coordinator fences itself too
            writer.start()
            reader.start()
            wait_until(lambda: len(writer.acks_after(0)) > 200 and reader.read_after(0) > 200, timeout=30,
                       message="writes and reads flowing")
            etcd.kill9()
            killed = time.monotonic()
            time.sleep(SESSION_MS / 1000 + 2)  # past any session: every broker fences itself
            etcd.start()
            restarted = time.monotonic()
            # no broker acknowledged anything once its lease could have expired
            with writer.lock:
                late = [when for _, _, when in writer.acked if killed + SESSION_MS / 1000 + 0.5 < when < restarted]
            assert not late, f"{len(late)} writes acknowledged with no session to back them"
            wait_until(lambda: len(writer.acks_after(restarted)) > 200, timeout=60,
                       message="acknowledged writes after etcd came back")
            wait_until(lambda: reader.read_after(restarted) > 200, timeout=60,
                       message="reads after etcd came back")
            in_log = len(read_all(bootstrap, topic))
            wait_until(lambda: committed(bootstrap, group, topic) > in_log, timeout=30,
                       message="the group committing offsets after etcd came back")
            took = min(writer.acks_after(restarted)) - restarted
            writer.stop_flag.set()
            writer.join(60)
            assert not writer.is_alive()
            acked = {v for v, _, _ in writer.acked}
            wait_until(lambda: acked <= set(reader.values), timeout=30, message="the reader has every ack")
            values = read_all(bootstrap, topic)
        finally:
            for thread in (writer, reader):
                if thread is not None:
                    thread.stop_flag.set()
                    thread.join(60)
            for b in brokers.values():
                b.dispose()
    lost, duplicated, ordered = losses(writer, values)
    print(f"etcd restart: {writer.sent} sent, {len(writer.acked)} acknowledged, {len(lost)} lost, "
          f"{len(duplicated)} duplicated; first acknowledgement {took * 1000:.0f} ms after etcd was back")
    assert not lost and not duplicated and ordered


def test_a_killed_leader_is_replaced_long_before_its_session_times_out(cluster) -> None:
    """kill -9 closes the leader's port: its followers find connections refused and end
    its session in etcd at once, so a new leader takes writes within a few seconds
    although the session timeout is 20 s."""
    brokers = start_three(cluster, **{"broker.session.timeout.ms": 20000})
    topic = create_replicated(brokers[1].bootstrap, unique_topic("probe"))
    old = wait_until(lambda: fully_replicated(brokers, topic, [1, 2, 3]), timeout=20, message="ISR 1,2,3")
    survivors = {i: b for i, b in brokers.items() if i != old}
    marks = {i: b.log_size() for i, b in survivors.items()}
    brokers[old].kill9()
    killed = time.monotonic()
    new = wait_until(lambda: fully_replicated(survivors, topic, sorted(survivors)), timeout=15, interval=0.1,
                     message="a new leader")
    took = time.monotonic() - killed
    print(f"kill -9 to a new leader with a 20 s session: {took * 1000:.0f} ms")
    assert new != old and took < 10
    assert any("refuses connections" in b.log_text(marks[i]) for i, b in survivors.items())
    assert raw_produce(survivors[new], topic, acks=-1, value=b"1") == 0
