"""The log cleaner: compaction semantics, bounded memory, and crash recovery at each step."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

import pytest

from moldau.records import (
    Compression,
    RecordInput,
    build_batch,
    decode_records,
    iter_batches,
)
from moldau.storage import LogConfig, LogManager
from moldau.storage.cleaner import CleanerConfig, LogCleaner
from moldau.storage.cleaner_offset_map import SLOT_SIZE, OffsetMap

NOW = 1_000_000_000
Rec = tuple[int, bytes | None, bytes | None]


def compact_config(**overrides: object) -> LogConfig:
    settings: dict[str, object] = {
        "cleanup_policy": "compact",
        "segment_bytes": 2000,
        "min_cleanable_dirty_ratio": 0.01,
        "delete_retention_ms": 1000,
    }
    settings.update(overrides)
    return LogConfig(**settings)  # type: ignore[arg-type]


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


def new_manager(tmp_path: Path, config: LogConfig) -> LogManager:
    (tmp_path / "data").mkdir(parents=True, exist_ok=True)
    manager = LogManager(tmp_path / "data", config)
    manager.load()
    return manager


def produce(
    log, records: Iterable[tuple[bytes | None, bytes | None]], *, per_batch: int = 1, **kw
) -> None:
    items = list(records)
    for i in range(0, len(items), per_batch):
        chunk = [RecordInput(k, v, timestamp=NOW) for k, v in items[i : i + per_batch]]
        log.append_as_leader(bytearray(build_batch(chunk, **kw)), leader_epoch=0, now_ms=NOW)


def read_records(log) -> list[Rec]:
    out: list[Rec] = []
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        info = log.read(offset, 1 << 20)
        if info.slice is None:
            break
        views = list(iter_batches(info.slice.read()))
        for view in views:
            out += [(r.offset, r.key, r.value) for r in decode_records(view)]
        offset = views[-1].last_offset + 1
    return out


def workload(n: int, keys: int, tombstone_every: int = 0) -> list[tuple[bytes, bytes | None]]:
    items: list[tuple[bytes, bytes | None]] = []
    for i in range(n):
        key = b"key-%d" % (i % keys)
        tombstone = tombstone_every and i % tombstone_every == 0 and i > n // 2
        items.append((key, None if tombstone else b"value-%d" % i))
    return items


def check_compacted(before: list[Rec], after: list[Rec], active_base: int) -> None:
    """Offsets unchanged, nothing invented, latest per key kept, one per key below active."""
    original = {offset: (key, value) for offset, key, value in before}
    offsets = [offset for offset, _, _ in after]
    assert offsets == sorted(set(offsets)), "offsets must stay strictly increasing"
    for offset, key, value in after:
        assert original[offset] == (key, value), f"record at {offset} changed"
    latest: dict[bytes | None, int] = {}
    for offset, key, _ in before:
        latest[key] = offset
    kept = {offset for offset, _, _ in after}
    for key, offset in latest.items():
        value = original[offset][1]
        if value is not None:
            assert offset in kept, f"latest record of {key!r} at {offset} lost"
    cleaned = [(o, k) for o, k, _ in after if o < active_base]
    keys = [k for _, k in cleaned]
    assert len(keys) == len(set(keys)), "a key appears twice in the cleaned part"
    for offset, key in cleaned:
        assert latest[key] == offset or latest[key] >= active_base


def test_keeps_the_latest_value_per_key_with_offsets_unchanged(tmp_path: Path) -> None:
    config = compact_config()
    manager = new_manager(tmp_path, config)
    log = manager.create_log("t", 0, config)
    produce(log, workload(400, 20), per_batch=3)
    before = read_records(log)
    active = log.active_segment
    active_bytes = active.log_path.read_bytes()
    cleaner = LogCleaner(manager, CleanerConfig(), time_ms=Clock())
    assert cleaner.clean_until_idle() >= 1
    after = read_records(log)
    check_compacted(before, after, log.active_segment.base_offset)
    assert len(after) < len(before)
    assert log.log_end_offset == 400
    # The active segment is untouched, byte for byte.
    assert log.active_segment is active
    assert active.log_path.read_bytes() == active_bytes
    # Reopened from disk, the log reads the same.
    manager.shutdown()
    manager = new_manager(tmp_path, config)
    assert read_records(manager.get_log("t", 0)) == after


def test_compressed_batches_and_keyless_records(tmp_path: Path) -> None:
    config = compact_config()
    manager = new_manager(tmp_path, config)
    log = manager.create_log("t", 0, config)
    produce(log, workload(300, 7), per_batch=10, compression=Compression.GZIP)
    before = read_records(log)
    LogCleaner(manager, time_ms=Clock()).clean_until_idle()
    after = read_records(log)
    check_compacted(before, after, log.active_segment.base_offset)
    assert len(after) < len(before)


def test_tombstones_kept_until_delete_retention_then_removed(tmp_path: Path) -> None:
    config = compact_config(delete_retention_ms=5000)
    manager = new_manager(tmp_path, config)
    log = manager.create_log("t", 0, config)
    produce(log, [(b"a", b"1"), (b"b", b"1"), (b"a", None)])
    produce(log, [(b"k%d" % i, b"x" * 50) for i in range(60)])  # roll past the tombstone
    clock = Clock()
    cleaner = LogCleaner(manager, time_ms=clock)
    cleaner.clean_until_idle()
    records = read_records(log)
    assert (2, b"a", None) in records, "tombstone must stay until its horizon"
    assert all(k != b"a" or v is None for _, k, v in records)
    clock.now += 4999
    cleaner.clean_until_idle()
    assert (2, b"a", None) in read_records(log)
    clock.now += 2
    assert cleaner.clean_until_idle() >= 1, "a due horizon schedules a pass by itself"
    records = read_records(log)
    assert all(k != b"a" for _, k, _ in records)
    assert (1, b"b", b"1") in records


def test_dirty_ratio_is_respected(tmp_path: Path) -> None:
    config = compact_config(min_cleanable_dirty_ratio=0.9)
    manager = new_manager(tmp_path, config)
    log = manager.create_log("t", 0, config)
    produce(log, workload(300, 300))
    clock = Clock()
    cleaner = LogCleaner(manager, time_ms=clock)
    assert cleaner.clean_until_idle() == 1  # all dirty: ratio 1.0
    first_dirty = cleaner.first_dirty_offset("t", 0)
    assert first_dirty == log.active_segment.base_offset
    produce(log, workload(40, 300))
    candidate = cleaner.log_to_clean("t", 0, log, clock())
    assert 0 < candidate.cleanable_ratio < 0.9
    assert cleaner.clean_until_idle() == 0
    log.config = compact_config(min_cleanable_dirty_ratio=0.0)
    assert cleaner.clean_until_idle() == 1


def test_policy_delete_is_never_cleaned(tmp_path: Path) -> None:
    config = compact_config(cleanup_policy="delete")
    manager = new_manager(tmp_path, config)
    log = manager.create_log("t", 0, config)
    produce(log, workload(300, 3))
    assert LogCleaner(manager, time_ms=Clock()).clean_until_idle() == 0


def test_min_compaction_lag_holds_young_segments(tmp_path: Path) -> None:
    config = compact_config(min_compaction_lag_ms=60_000)
    manager = new_manager(tmp_path, config)
    log = manager.create_log("t", 0, config)
    produce(log, workload(300, 3))
    clock = Clock()
    cleaner = LogCleaner(manager, time_ms=clock)
    assert cleaner.clean_until_idle() == 0
    clock.now += 60_001
    assert cleaner.clean_until_idle() >= 1


def test_max_compaction_lag_overrides_the_ratio(tmp_path: Path) -> None:
    config = compact_config(min_cleanable_dirty_ratio=1.0, max_compaction_lag_ms=10_000)
    manager = new_manager(tmp_path, config)
    log = manager.create_log("t", 0, config)
    produce(log, workload(300, 3))
    clock = Clock()
    cleaner = LogCleaner(manager, time_ms=clock)
    assert cleaner.clean_until_idle() == 0
    clock.now += 10_001
    assert cleaner.clean_until_idle() >= 1


def test_small_segments_are_merged(tmp_path: Path) -> None:
    config = compact_config(segment_bytes=1000)
    manager = new_manager(tmp_path, config)
    log = manager.create_log("t", 0, config)
    produce(log, workload(600, 5))
    segments_before = len(log.segments)
    cleaner = LogCleaner(manager, time_ms=Clock())
    cleaner.clean_until_idle()
    produce(log, workload(5, 5))  # dirty again, so the next pass regroups
    log.roll()
    cleaner.clean_until_idle()
    assert len(log.segments) < segments_before / 4
    assert all(s.size <= 1000 for s in log.segments)
    names = sorted(p.name for p in log.dir.iterdir())
    assert not [n for n in names if n.endswith((".cleaned", ".swap"))]


def test_memory_is_bounded_and_cleaning_takes_several_passes(tmp_path: Path) -> None:
    config = compact_config(segment_bytes=4000)
    manager = new_manager(tmp_path, config)
    log = manager.create_log("t", 0, config)
    produce(log, workload(2000, 200))
    before = read_records(log)
    # 40 slots at load factor 0.9: 36 keys per pass, for 200 distinct keys.
    cleaner = LogCleaner(manager, CleanerConfig(dedupe_buffer_size=40 * SLOT_SIZE), time_ms=Clock())
    cleaner.clean_once()
    first_pass_end = cleaner.first_dirty_offset("t", 0)
    assert first_pass_end is not None
    assert first_pass_end < log.active_segment.base_offset, "the full map stops the pass early"
    passes = 1 + cleaner.clean_until_idle()
    assert passes > 3
    assert cleaner.first_dirty_offset("t", 0) == log.active_segment.base_offset
    check_compacted(before, read_records(log), log.active_segment.base_offset)


def test_offset_map_basics() -> None:
    offset_map = OffsetMap(10 * SLOT_SIZE, 0.9)
    assert offset_map.slots == 10 and offset_map.capacity == 9
    for i in range(9):
        offset_map.put(b"k%d" % i, i)
    offset_map.put(b"k3", 100)
    assert offset_map.full and offset_map.size == 9
    assert offset_map.get(b"k3") == 100 and offset_map.get(b"k8") == 8
    assert offset_map.get(b"missing") == -1
    assert offset_map.latest_offset == 100
    offset_map.clear()
    assert offset_map.size == 0 and offset_map.get(b"k3") == -1
    with pytest.raises(ValueError):
        OffsetMap(SLOT_SIZE - 1)


def test_producer_state_batches_survive_as_empty_batches(tmp_path: Path) -> None:
    config = compact_config()
    manager = new_manager(tmp_path, config)
    log = manager.create_log("t", 0, config)
    # Producer 7's only batch is fully superseded by a later, non-idempotent write.
    batch = build_batch(
        [RecordInput(b"p", b"old", timestamp=NOW)],
        producer_id=7,
        producer_epoch=0,
        base_sequence=0,
    )
    log.append_as_leader(bytearray(batch), leader_epoch=0, now_ms=NOW)
    produce(log, [(b"p", b"new")] + [(b"f%d" % i, b"x" * 40) for i in range(60)])
    LogCleaner(manager, time_ms=Clock()).clean_until_idle()
    info = log.read(0, 1 << 20)
    assert info.slice is not None
    first = next(iter_batches(info.slice.read()))
    assert first.base_offset == 0 and first.records_count == 0
    assert first.producer_id == 7 and first.base_sequence == 0
    assert (1, b"p", b"new") in read_records(log)


# -- crash recovery ----------------------------------------------------------------------


def crash_images(tmp_path: Path) -> tuple[Path, list[Rec], LogConfig]:
    """Run a pass and copy the data dir at the moment of the first swap (a kill -9 there).

    Returns the copy (its cleaned group is in ``.swap`` files, the old segments in
    place), the records before cleaning, and the config.
    """
    config = compact_config()
    manager = new_manager(tmp_path, config)
    log = manager.create_log("t", 0, config)
    produce(log, workload(400, 10, tombstone_every=7))
    log.wait_for_snapshot()  # the rolls' producer snapshots: written, not being written, when copied
    before = read_records(log)
    manager.checkpoint()
    image = tmp_path / "image"
    cleaner = LogCleaner(manager, time_ms=Clock())

    def snapshot_then_stop(fn):
        if not image.exists():
            shutil.copytree(manager.data_dir, image)
        raise KeyboardInterrupt  # stop the pass: the copy is the crash image

    cleaner._cleaners[0]._run_on_owner = snapshot_then_stop  # noqa: SLF001
    with pytest.raises(KeyboardInterrupt):
        cleaner.clean_once()
    # The interrupted pass dropped its own files; the live log is intact.
    assert read_records(log) == before
    assert not [p for p in log.dir.iterdir() if p.name.endswith((".swap", ".cleaned"))]
    return image, before, config


def reopen(image: Path, config: LogConfig) -> list[Rec]:
    manager = LogManager(image, config)
    manager.load()
    log = manager.get_log("t", 0)
    assert log is not None
    records = read_records(log)
    leftovers = [p.name for p in log.dir.iterdir() if p.name.endswith((".swap", ".cleaned"))]
    assert not leftovers
    manager.shutdown()
    return records


def swap_end(swap: Path) -> int:
    """The end of the offset range a ``.swap`` segment replaces (at least its base)."""
    base = int(swap.name[:20])
    return max([base] + [b.last_offset for b in iter_batches(swap.read_bytes())]) + 1


def part(image: Path) -> Path:
    return image / "t-0"


def test_crash_with_only_cleaned_files_rolls_back(tmp_path: Path) -> None:
    image, before, config = crash_images(tmp_path)
    for path in part(image).glob("*.swap"):
        path.rename(path.with_name(path.name[: -len(".swap")] + ".cleaned"))
    # A half-written cleaned log, too.
    for path in part(image).glob("*.log.cleaned"):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    assert reopen(image, config) == before


def test_crash_with_swap_files_and_old_segments_completes_the_swap(tmp_path: Path) -> None:
    image, before, config = crash_images(tmp_path)
    assert list(part(image).glob("*.log.swap"))
    after = reopen(image, config)
    assert len(after) < len(before)
    check_compacted(before, after, active_base=0)
    # Reopening again changes nothing.
    assert reopen(image, config) == after


@pytest.mark.parametrize("how", ["deleted", "renamed", "first-only", "swap-index-renamed"])
def test_crash_after_old_segments_went_completes_the_swap(tmp_path: Path, how: str) -> None:
    image, before, config = crash_images(tmp_path)
    (swap,) = part(image).glob("*.log.swap")
    base = int(swap.name[:20])
    swapped_end = swap_end(swap)
    olds = sorted(p for p in part(image).glob("*.log") if base <= int(p.name[:20]) < swapped_end)
    assert len(olds) >= 1
    for i, old in enumerate(olds):
        if how == "first-only" and i > 0:
            break
        for suffix in ("", ".index", ".timeindex"):
            path = old if not suffix else old.with_name(old.name[:20] + suffix)
            if how == "deleted":
                path.unlink(missing_ok=True)
            elif path.exists():
                path.rename(path.with_name(path.name + ".deleted"))
    if how == "swap-index-renamed":
        for path in part(image).glob("*.index.swap"):
            path.rename(path.with_name(path.name[: -len(".swap")]))
    after = reopen(image, config)
    assert len(after) < len(before)
    check_compacted(before, after, active_base=0)


def test_crash_after_the_swap_leaves_only_deleted_files(tmp_path: Path) -> None:
    image, before, config = crash_images(tmp_path)
    (swap,) = part(image).glob("*.log.swap")
    base = int(swap.name[:20])
    swapped_end = swap_end(swap)
    for old in part(image).glob("*.log"):
        if base <= int(old.name[:20]) < swapped_end:
            old.rename(old.with_name(old.name + ".deleted"))
    for path in part(image).glob("*.swap"):
        path.rename(path.with_name(path.name[: -len(".swap")]))
    after = reopen(image, config)
    check_compacted(before, after, active_base=0)
    assert not list(part(image).glob("*.deleted"))


def test_swap_refused_when_the_log_changed(tmp_path: Path) -> None:
    config = compact_config()
    manager = new_manager(tmp_path, config)
    log = manager.create_log("t", 0, config)
    produce(log, workload(400, 10))
    before = read_records(log)
    cleaner = LogCleaner(manager, time_ms=Clock())
    inner = cleaner._cleaners[0]  # noqa: SLF001

    def truncate_then_swap(fn):
        log.truncate_to(5)
        return fn()

    inner._run_on_owner = truncate_then_swap  # noqa: SLF001
    cleaner.clean_once()
    assert read_records(log) == [r for r in before if r[0] < log.log_end_offset]
    assert not [p for p in log.dir.iterdir() if p.name.endswith((".swap", ".cleaned"))]


# -- transactions ------------------------------------------------------------------------


def _txn(log, pid: int, items: list[tuple[bytes, bytes]]) -> None:
    produce(log, items, per_batch=len(items), producer_id=pid, producer_epoch=0, base_sequence=0,
            is_transactional=True)


def _marker(log, pid: int, commit: bool) -> int:
    from moldau.storage.txn_state import encode_marker_record

    key, value = encode_marker_record(commit, 0)
    batch = build_batch([RecordInput(key, value, timestamp=NOW)], producer_id=pid, producer_epoch=0,
                        is_transactional=True, is_control=True)
    return log.append_as_leader(bytearray(batch), leader_epoch=0, now_ms=NOW, from_client=False).first_offset


def _control_offsets(log) -> list[int]:
    out = []
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        info = log.read(offset, 1 << 20)
        views = list(iter_batches(info.slice.read()))
        out += [v.base_offset for v in views if v.is_control]
        offset = views[-1].last_offset + 1
    return out


def test_aborted_data_is_removed_and_markers_after_their_horizon(tmp_path: Path) -> None:
    config = compact_config(delete_retention_ms=5000)
    manager = new_manager(tmp_path, config)
    log = manager.create_log("t", 0, config)
    produce(log, [(b"a", b"plain"), (b"c", b"plain")])  # 0-1
    _txn(log, 1, [(b"a", b"aborted"), (b"b", b"aborted")])  # 2-3
    _txn(log, 2, [(b"c", b"committed"), (b"d", b"committed")])  # 4-5
    abort = _marker(log, 1, commit=False)  # 6
    commit = _marker(log, 2, commit=True)  # 7
    _txn(log, 3, [(b"e", b"open")])  # 8, never decided here
    produce(log, [(b"f%d" % i, b"x" * 50) for i in range(80)])  # roll well past them
    log.on_high_watermark(log.log_end_offset)
    assert log.first_unstable_offset() == 8
    clock = Clock()
    cleaner = LogCleaner(manager, time_ms=clock)
    cleaner.clean_until_idle()
    records = read_records(log)
    values = {(k, v) for _, k, v in records}
    assert (b"a", b"plain") in values, "an aborted write must not shadow the value before it"
    assert not any(v == b"aborted" for _, _, v in records)
    assert (b"c", b"committed") in values and (b"c", b"plain") not in values
    assert (b"e", b"open") in values  # above the first unstable offset: untouched
    assert _control_offsets(log) == [abort, commit]  # data of both was seen this pass
    assert [a.last_offset for a in log.aborted.entries] == [abort]
    # once the open transaction ends, the next pass (more dirty data) finds no data
    # left for the abort: the marker gets a delete horizon, a pass past it removes it
    _marker(log, 3, commit=True)
    produce(log, [(b"f%d" % i, b"y" * 50) for i in range(80)])
    log.on_high_watermark(log.log_end_offset)
    clock.now += 1
    cleaner.clean_until_idle()
    assert abort in _control_offsets(log)
    clock.now += 5001
    assert cleaner.clean_until_idle() >= 1, "a due horizon schedules a pass by itself"
    assert abort not in _control_offsets(log)
    assert commit in _control_offsets(log)  # its transaction's data is still there
    assert log.aborted.entries == []
    assert not any(v == b"aborted" for _, _, v in read_records(log))
