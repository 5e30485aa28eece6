"""A topic update (configs, new partitions) never writes back partition states: the
updating broker's copy may be older than what another broker wrote with
compare-and-swap (an ISR change, an election, a reassignment)."""

from __future__ import annotations

import asyncio
import dataclasses

from moldau.metastore.etcd import EtcdTarget

from .test_etcd import _close, _stores, _topic, etcd, target  # noqa: F401 - fixtures


def test_a_config_update_does_not_undo_a_newer_partition_state(target: EtcdTarget) -> None:  # noqa: F811
    async def scenario() -> None:
        a, b = await _stores(target, 2)
        try:
            topic = _topic("u", partitions=1)
            topic.partitions[0] = dataclasses.replace(topic.partitions[0], replicas=[1, 2], isr=[1, 2])
            await a.create_topic(topic)
            for _ in range(100):  # b learns of the topic by its watch
                if "u" in b._topics:
                    break
                await asyncio.sleep(0.02)
            stale = topic.partitions[0]
            newer = dataclasses.replace(stale, isr=[1], partition_epoch=1,
                                        adding_replicas=[2], removing_replicas=[3])
            await b.alter_partition("u", 0, newer, expected_epoch=0)
            # a's broker still holds the old state when it changes a config
            updated = dataclasses.replace(topic, partitions={0: stale}, configs={"retention.ms": "7"})
            await a.update_topic(updated)
            stored = await b.get_topic("u")
            assert stored is not None and stored.configs == {"retention.ms": "7"}
            assert stored.partitions[0] == newer
        finally:
            await _close([a, b])

    asyncio.run(asyncio.wait_for(scenario(), 30))
