"""paced and paced_map hand the event loop back every PACE entries, counting the entries
of nested loops together when they share a Pacer, and change nothing else."""

from __future__ import annotations

import asyncio

from moldau.handlers.pacing import PACE, Pacer, paced, paced_map


async def _loop_turns_during(work) -> tuple[object, int]:
    """(result of ``work``, how often another task ran meanwhile)."""
    turns = 0
    done = False

    async def other() -> None:
        nonlocal turns
        while not done:
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.ensure_future(other())
    await asyncio.sleep(0)
    turns = 0
    try:
        result = await work
    finally:
        done = True
        await task
    return result, turns


def test_paced_map_maps_and_yields_every_pace_entries():
    items = range(10 * PACE + 5)
    result, turns = asyncio.run(_loop_turns_during(paced_map(lambda x: x * 2, items)))
    assert result == [x * 2 for x in items]
    assert 10 <= turns <= 11


def test_nested_loops_sharing_a_pacer_count_every_entry():
    topics = [[1] for _ in range(5 * PACE)]  # many topics of one partition each

    async def walk() -> int:
        pacer = Pacer()
        total = 0
        async for partitions in paced(topics, pacer):
            total += len(await paced_map(lambda p: p, partitions, pacer))
        return total

    total, turns = asyncio.run(_loop_turns_during(walk()))
    assert total == 5 * PACE
    assert turns >= 9  # two entries counted per topic: one yield per PACE / 2 topics


def test_a_small_list_never_yields():
    result, turns = asyncio.run(_loop_turns_during(paced_map(str, range(PACE - 1))))
    assert result == [str(x) for x in range(PACE - 1)] and turns == 0
