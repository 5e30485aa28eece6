"""The etcd metadata backend against a real etcd: compare-and-swap, sessions, watch, election.

Every test uses its own cluster name (key prefix) on one etcd per module, so tests do
not see each other's keys.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from integration.etcd_process import EtcdServer, running_etcd
from moldau.metastore.etcd import EtcdMetaStore, EtcdTarget
from moldau.metastore.store import (
    BrokerChanged,
    BrokerIdInUseError,
    BrokerInfo,
    ClusterImage,
    ControllerChanged,
    MetaChange,
    PartitionChanged,
    PartitionState,
    SessionChanged,
    StaleEpochError,
    TopicChanged,
    TopicDeleted,
    TopicExistsError,
    TopicRecord,
)

_names = itertools.count()


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdServer]:
    with running_etcd() as server:
        yield server


@pytest.fixture
def target(etcd: EtcdServer) -> EtcdTarget:
    return EtcdTarget.parse(f"{etcd.url}/t{next(_names)}-{uuid.uuid4().hex[:8]}")


def _topic(name: str, partitions: int = 1) -> TopicRecord:
    states = {i: PartitionState(leader=1, replicas=[1], isr=[1]) for i in range(partitions)}
    return TopicRecord(name, uuid.uuid4(), states, {"retention.ms": "5"})


async def _stores(target: EtcdTarget, count: int) -> list[EtcdMetaStore]:
    stores = [EtcdMetaStore(target) for _ in range(count)]
    for store in stores:
        await store.load()
    return stores


async def _close(stores: list[EtcdMetaStore]) -> None:
    for store in stores:
        await store.close()


async def _fresh_image(target: EtcdTarget) -> ClusterImage:
    """What a newcomer loads (its store closed again, so no watch is left running)."""
    store = EtcdMetaStore(target)
    try:
        return await store.load()
    finally:
        await store.close()


async def _next(changes: AsyncIterator[MetaChange], timeout: float = 5.0) -> MetaChange:
    return await asyncio.wait_for(changes.__anext__(), timeout)


def test_url_parsing() -> None:
    target = EtcdTarget.parse("etcd://127.0.0.1:2379,127.0.0.2:2380/prod")
    assert target.endpoints == (("127.0.0.1", 2379), ("127.0.0.2", 2380))
    assert target.cluster == "prod"
    assert target.grpc_host_port() == ("ipv4:127.0.0.1:2379,127.0.0.2", 2380)
    assert EtcdTarget.parse("etcd://localhost:2379").cluster == "default"
    for bad in ("http://h:1", "etcd://h", "etcd://h:x", "etcd://h:1/a/b"):
        with pytest.raises(ValueError):
            EtcdTarget.parse(bad)


def test_topics_persist_and_one_creator_wins(target: EtcdTarget) -> None:
    async def scenario() -> None:
        stores = await _stores(target, 5)
        try:
            image_ids = {(await s.load()).cluster_id for s in stores}
            assert len(image_ids) == 1 and "" not in image_ids  # one cluster id, created once
            rivals = [_topic("race", 3) for _ in stores]
            results = await asyncio.gather(
                *(s.create_topic(t) for s, t in zip(stores, rivals, strict=True)), return_exceptions=True
            )
            winners = [t for t, r in zip(rivals, results, strict=True) if r is None]
            assert len(winners) == 1
            assert all(isinstance(r, TopicExistsError) for r in results if r is not None)
            fresh = EtcdMetaStore(target)
            image = await fresh.load()
            assert image.topics["race"].topic_id == winners[0].topic_id
            assert set(image.topics["race"].partitions) == {0, 1, 2}
            assert image.topics["race"].configs == {"retention.ms": "5"}
            assert await stores[3].get_topic("race") == image.topics["race"]
            assert await stores[3].get_topic("absent") is None
            # More partitions than one etcd transaction may hold, then grown and deleted.
            big = _topic("big", 300)
            await stores[0].create_topic(big)
            big.partitions[300] = PartitionState(leader=2, replicas=[2], isr=[2])
            big.configs = {"cleanup.policy": "compact"}
            await stores[0].update_topic(big)
            await stores[0].set_broker_configs("", {"log.retention.ms": "1000"})
            await stores[0].set_broker_configs("1", {"num.partitions": "3"})
            image = await _fresh_image(target)
            assert len(image.topics["big"].partitions) == 301
            assert image.topics["big"].partitions[300].leader == 2
            assert image.topics["big"].configs == {"cleanup.policy": "compact"}
            assert image.broker_configs == {"": {"log.retention.ms": "1000"}, "1": {"num.partitions": "3"}}
            await stores[1].delete_topic("race")
            assert "race" not in (await _fresh_image(target)).topics
            await fresh.close()
        finally:
            await _close(stores)

    asyncio.run(scenario())


def test_producer_ids_unique_under_concurrency(target: EtcdTarget) -> None:
    async def scenario() -> None:
        stores = await _stores(target, 4)
        try:
            calls = [stores[i % 4].allocate_producer_ids(7) for i in range(60)]
            firsts = await asyncio.gather(*calls)
            blocks = sorted(firsts)
            assert blocks == list(range(0, 60 * 7, 7))  # no overlap, no gap
        finally:
            await _close(stores)

    asyncio.run(scenario())


def test_alter_partition_is_compare_and_swap(target: EtcdTarget) -> None:
    async def scenario() -> None:
        a, b = await _stores(target, 2)
        try:
            topic = _topic("p", 2)
            topic.partitions[0] = PartitionState(leader=1, replicas=[1, 2], isr=[1, 2], partition_epoch=0)
            await a.create_topic(topic)
            await b.load()
            shrunk = PartitionState(leader=1, leader_epoch=0, replicas=[1, 2], isr=[1], partition_epoch=1)
            await b.alter_partition("p", 0, shrunk, expected_epoch=0)
            with pytest.raises(StaleEpochError):
                await a.alter_partition("p", 0, shrunk, expected_epoch=0)
            assert (await _fresh_image(target)).topics["p"].partitions[0].isr == [1]
        finally:
            await _close([a, b])

    asyncio.run(scenario())


def test_watch_delivers_changes_in_order(target: EtcdTarget) -> None:
    async def scenario() -> None:
        writer, reader = await _stores(target, 2)
        try:
            changes = reader.watch()
            own = writer.watch()
            first = _topic("w1", 2)
            await writer.create_topic(first)
            await writer.create_topic(_topic("w2"))
            await writer.delete_topic("w1")
            again = _topic("w1", 1)  # same name, new id
            await writer.create_topic(again)
            topic = again
            topic.partitions[0] = PartitionState(leader=2, leader_epoch=1, replicas=[2], isr=[2], partition_epoch=1)
            await writer.alter_partition("w1", 0, topic.partitions[0], expected_epoch=0)
            seen = [await _next(changes) for _ in range(5)]
            assert [type(c) for c in seen] == [TopicChanged, TopicChanged, TopicDeleted, TopicChanged, PartitionChanged]
            assert seen[0].topic.topic_id == first.topic_id and set(seen[0].topic.partitions) == {0, 1}
            assert seen[2].topic_id == first.topic_id
            assert seen[3].topic.topic_id == again.topic_id
            assert seen[4].state.leader == 2
            revisions = [c.revision for c in seen]
            assert revisions == sorted(revisions) and len(set(revisions)) == 5
            # The writer's own topic writes are applied by its caller, not echoed.
            with pytest.raises(asyncio.TimeoutError):
                await _next(own, timeout=0.5)
        finally:
            await _close([writer, reader])

    asyncio.run(scenario())


def test_sessions_duplicates_and_lease_expiry(target: EtcdTarget) -> None:
    async def scenario() -> None:
        a, b, c, observer = await _stores(target, 4)
        try:
            await a.register_broker(BrokerInfo(1, "127.0.0.1", 9001, "r1"), session_timeout_ms=1000)
            await b.register_broker(BrokerInfo(2, "127.0.0.1", 9002), session_timeout_ms=1000)
            with pytest.raises(BrokerIdInUseError, match="broker id 1 is already registered.*127.0.0.1:9001"):
                await c.register_broker(BrokerInfo(1, "127.0.0.1", 9003), session_timeout_ms=1000)
            deadline = time.monotonic() + 5
            while len(observer.brokers()) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert observer.brokers() == [BrokerInfo(1, "127.0.0.1", 9001, "r1"), BrokerInfo(2, "127.0.0.1", 9002)]
            # Broker 2 stops renewing (as if frozen or killed): etcd ends its session.
            changes = observer.watch()
            for task in b._tasks:
                task.cancel()
            stopped = time.monotonic()
            change = await _next(changes, timeout=5)
            assert isinstance(change, BrokerChanged) and change.broker_id == 2 and change.info is None
            assert time.monotonic() - stopped < 1.0 + 1.5  # TTL 1 s, checked every 0.5 s
            assert [i.broker_id for i in observer.brokers()] == [1]
            # Broker 1 keeps renewing well past its timeout.
            await asyncio.sleep(1.5)
            assert [i.broker_id for i in observer.brokers()] == [1]
            # The id is free again once its session ended.
            await c.register_broker(BrokerInfo(2, "127.0.0.1", 9003), session_timeout_ms=1000)
        finally:
            await _close([a, b, c, observer])

    asyncio.run(scenario())


def test_controller_election_and_failover(target: EtcdTarget) -> None:
    async def scenario() -> None:
        stores = await _stores(target, 3)
        try:
            for i, store in enumerate(stores, start=1):
                await store.register_broker(BrokerInfo(i, "127.0.0.1", 9000 + i), session_timeout_ms=1000)
            await asyncio.gather(*(s.campaign() for s in stores))
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and len({s.controller() for s in stores}) != 1:
                await asyncio.sleep(0.02)
            first = stores[0].controller()
            assert first is not None and all(s.controller() == first for s in stores)
            holder = stores[first.broker_id - 1]
            others = [s for s in stores if s is not holder]
            changes = others[0].watch()
            # The controller freezes: no renewals, so its lease and the role lapse.
            for task in holder._tasks:
                task.cancel()
            frozen = time.monotonic()
            new = None
            while new is None or new.broker_id == first.broker_id:
                change = await _next(changes, timeout=5)
                if isinstance(change, ControllerChanged):
                    new = change.controller
            failover = time.monotonic() - frozen
            assert failover < 1.0 + 1.5
            assert new.epoch > first.epoch
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not all(s.controller() == new for s in others):
                await asyncio.sleep(0.02)
            assert all(s.controller() == new for s in others)
            # A clean close hands the role over at once (the lease is revoked).
            successor = stores[new.broker_id - 1]
            await successor.close()
            last = [s for s in others if s is not successor][0]
            deadline = time.monotonic() + 0.9  # well inside the 1 s session
            while time.monotonic() < deadline and (last.controller() or new).broker_id == new.broker_id:
                await asyncio.sleep(0.01)
            assert last.controller() is not None and last.controller().broker_id not in (
                first.broker_id, new.broker_id
            )
        finally:
            await _close(stores)

    asyncio.run(scenario())


def test_a_lapsed_session_registers_again(target: EtcdTarget) -> None:
    async def scenario() -> None:
        broker, observer = await _stores(target, 2)
        try:
            await broker.register_broker(BrokerInfo(7, "127.0.0.1", 9007), session_timeout_ms=1000)
            await broker.campaign()
            first = broker.controller()
            assert first is not None and first.broker_id == 7
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and observer.controller() != first:
                await asyncio.sleep(0.02)  # the observer has caught up with the registration
            assert observer.controller() == first and [b.broker_id for b in observer.brokers()] == [7]
            changes = observer.watch()
            # etcd ends the session (as after an outage longer than the timeout).
            await observer._client.revoke_lease(broker._lease.id)
            seen: list[MetaChange] = []
            while not (
                any(isinstance(c, BrokerChanged) and c.info is not None for c in seen)
                and any(isinstance(c, ControllerChanged) and c.controller is not None for c in seen)
            ):
                seen.append(await _next(changes, timeout=5))
            assert isinstance(seen[0], BrokerChanged | ControllerChanged)
            assert [i.broker_id for i in observer.brokers()] == [7]
            again = observer.controller()
            assert again is not None and again.broker_id == 7 and again.epoch > first.epoch
        finally:
            await _close([broker, observer])

    asyncio.run(scenario())


def test_watch_and_session_survive_an_etcd_restart() -> None:
    with running_etcd() as server:  # its own etcd: this test kills it
        target = EtcdTarget.parse(server.url)

        async def scenario() -> None:
            broker, observer = await _stores(target, 2)
            try:
                await broker.register_broker(BrokerInfo(1, "127.0.0.1", 9001), session_timeout_ms=3000)
                await broker.campaign()
                changes = observer.watch()
                await asyncio.to_thread(server.kill9)
                await asyncio.sleep(0.5)
                await asyncio.to_thread(server.start)
                deadline = time.monotonic() + 10
                while True:  # the first write after the restart may find the channel reconnecting
                    try:
                        await broker.create_topic(_topic("after-restart"))
                        break
                    except Exception:
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(0.1)
                while True:
                    change = await _next(changes, timeout=10)
                    if isinstance(change, TopicChanged):
                        assert change.topic.name == "after-restart"
                        break
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and (
                    [b.broker_id for b in observer.brokers()] != [1] or observer.controller() is None
                ):
                    await asyncio.sleep(0.05)
                assert [b.broker_id for b in observer.brokers()] == [1]
                assert observer.controller() is not None and observer.controller().broker_id == 1
            finally:
                await _close([broker, observer])

        asyncio.run(scenario())


def test_the_session_lapses_without_etcd_and_resumes_after_a_reread() -> None:
    """The broker's session holds while renewals are answered, lapses by the clock
    (before the lease could expire) when etcd is gone, and after etcd is back is
    resumed only by the reader of the watch, once the re-read metadata is delivered."""
    with running_etcd() as server:  # its own etcd: this test kills it
        target = EtcdTarget.parse(server.url)

        async def scenario() -> None:
            (broker,) = await _stores(target, 1)
            changes = broker.watch()
            try:
                assert not broker.session.valid()  # not before registering
                await broker.register_broker(BrokerInfo(1, "127.0.0.1", 9001), session_timeout_ms=1000)
                assert not broker.session.valid()  # not before the reader applied the re-read
                back = await _next(changes)
                while not isinstance(back, SessionChanged):  # its own registration comes first
                    back = await _next(changes)
                assert back.valid
                broker.session.resume()
                assert broker.session.valid()
                await asyncio.sleep(1.2)  # renewed past the 1 s TTL
                assert broker.session.valid()
                await asyncio.to_thread(server.kill9)
                killed = time.monotonic()
                lapsed = await _next(changes, timeout=3)
                assert isinstance(lapsed, SessionChanged) and not lapsed.valid
                assert not broker.session.valid()
                assert time.monotonic() - killed < 1.0  # within the TTL: before etcd could end it
                await asyncio.to_thread(server.start)
                change = await _next(changes, timeout=10)
                while not isinstance(change, SessionChanged):
                    change = await _next(changes, timeout=10)
                assert change.valid and not broker.session.valid()
                broker.session.resume()
                assert broker.session.valid()
            finally:
                await _close([broker])

        asyncio.run(scenario())


def test_a_watch_behind_a_compaction_reloads_and_reports_the_difference(target: EtcdTarget) -> None:
    async def scenario() -> None:
        reader, writer = await _stores(target, 2)
        try:
            await writer.create_topic(_topic("kept"))
            await writer.create_topic(_topic("dropped", 2))
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and set((await reader.load()).topics) != {"kept", "dropped"}:
                await asyncio.sleep(0.02)
            # The reader is cut off (its watch stopped) while the cluster moves on and
            # etcd compacts the history the reader would resume from.
            reader._watch_task.cancel()
            resume_from = (await reader._client.get_prefix(reader.root)).header.revision + 1
            await writer.delete_topic("dropped")
            grown = _topic("new", 3)
            await writer.create_topic(grown)
            await writer.register_broker(BrokerInfo(5, "127.0.0.1", 9005), session_timeout_ms=3000)
            latest = (await writer._client.get_prefix(writer.root)).header.revision
            await writer._client.compact(latest)
            changes = reader.watch()
            reader._watch_task = asyncio.ensure_future(reader._watch_loop(resume_from))
            seen = [await _next(changes) for _ in range(3)]
            kinds = {type(c): c for c in seen}
            assert set(kinds) == {TopicDeleted, TopicChanged, BrokerChanged}
            assert kinds[TopicDeleted].name == "dropped"
            assert kinds[TopicChanged].topic == grown  # complete, with all its partitions
            assert kinds[BrokerChanged].info == BrokerInfo(5, "127.0.0.1", 9005)
            assert set((await reader.load()).topics) == {"kept", "new"}
            # And it follows live changes again afterwards.
            await writer.delete_topic("kept")
            change = await _next(changes)
            assert isinstance(change, TopicDeleted) and change.name == "kept"
        finally:
            await _close([reader, writer])

    asyncio.run(scenario())
