"""Property tests: random append sequences survive reopening, clean or not."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moldau.records import (
    Compression,
    RecordInput,
    build_batch,
    decode_records,
    iter_batches,
)
from moldau.storage import FileCache, Log, LogConfig

from .helpers import open_log, read_all

timestamps = st.one_of(st.just(-1), st.integers(min_value=0, max_value=10_000))

batches = st.builds(
    lambda records, codec: bytearray(build_batch(records, compression=codec)),
    st.lists(
        st.builds(
            RecordInput,
            key=st.one_of(st.none(), st.binary(max_size=8)),
            value=st.binary(max_size=150),
            timestamp=timestamps,
        ),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from([Compression.NONE, Compression.NONE, Compression.GZIP, Compression.LZ4]),
)

operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), batches),
        st.tuples(st.just("flush"), st.integers(min_value=0, max_value=200)),
        st.tuples(st.just("roll"), st.none()),
        st.tuples(st.just("truncate"), st.integers(min_value=0, max_value=200)),
        st.tuples(st.just("delete_records"), st.integers(min_value=0, max_value=200)),
    ),
    min_size=1,
    max_size=30,
)

configs = st.builds(
    lambda segment_bytes, interval, index_bytes: LogConfig(
        segment_bytes=segment_bytes,
        index_interval_bytes=interval,
        segment_index_bytes=index_bytes,
    ),
    st.sampled_from([300, 700, 5_000]),
    st.sampled_from([0, 60, 400, 4096]),
    st.sampled_from([40, 4096]),
)


def _records(log: Log) -> list[tuple[int, int]]:
    """``(offset, timestamp)`` of every record, in offset order."""
    out = []
    for data in read_all(log):
        (view,) = iter_batches(data)
        out.extend((r.offset, r.timestamp) for r in decode_records(view))
    return out


def _state(log: Log) -> tuple[object, ...]:
    return (
        log.log_end_offset,
        read_all(log),
        [s.base_offset for s in log.segments],
        [(s.offset_index.to_list(), s.time_index.to_list()) for s in log.segments],
    )


def _bounds(data: bytes) -> tuple[int, int]:
    (view,) = iter_batches(data)
    return view.base_offset, view.last_offset


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    config=configs,
    ops=operations,
    clean=st.booleans(),
    full_scan=st.booleans(),
    targets=st.lists(st.integers(min_value=0, max_value=10_001), max_size=5),
)
def test_reopen_returns_what_was_appended(
    config: LogConfig,
    ops: list[tuple[str, object]],
    clean: bool,
    full_scan: bool,
    targets: list[int],
) -> None:
    """A model (the list of appended batches) predicts reads before and after reopening."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "t-0"
        cache = FileCache(16)
        log = open_log(directory, config, cache)
        model: list[bytes] = []  # batches still visible, in offset order
        next_offset = 0
        for name, argument in ops:
            if name == "append":
                assert isinstance(argument, bytearray)
                data = bytearray(argument)
                info = log.append_as_leader(data, leader_epoch=2, now_ms=1_000)
                assert info.first_offset == next_offset
                next_offset = info.last_offset + 1
                model.append(bytes(data))
            elif name == "flush":
                assert isinstance(argument, int)
                log.flush(up_to=argument)
            elif name == "roll":
                log.roll(1_000)
            elif name == "truncate":
                assert isinstance(argument, int)
                if argument < log.log_start_offset:
                    continue  # a follower never truncates below its start
                log.truncate_to(argument, 1_000)
                model = [b for b in model if _bounds(b)[1] < argument]
                next_offset = _bounds(model[-1])[1] + 1 if model else log.log_end_offset
            else:
                assert isinstance(argument, int)
                if argument <= log.log_end_offset:
                    log.delete_records_before(argument)
                    model = [b for b in model if _bounds(b)[1] >= log.log_start_offset]
            assert log.log_end_offset == next_offset
        assert read_all(log) == model

        records = [(o, t) for o, t in _records(log) if o >= log.log_start_offset]
        for target in targets:
            expected = next(((o, t) for o, t in records if t >= target), None)
            assert log.offset_for_timestamp(target) == expected

        if clean:
            log.close(flush=True)
        else:
            log.active_segment.on_become_inactive()  # recovery writes this entry too
        before = _state(log)
        again = Log.open(
            directory,
            config,
            file_cache=cache,
            recovery_point=0 if full_scan else log.recovery_point,
            log_start_offset=log.log_start_offset,
            clean_shutdown=clean,
            now_ms=1_000,
        )
        assert _state(again) == before
        assert again.log_start_offset == log.log_start_offset
        for target in targets:
            expected = next(((o, t) for o, t in records if t >= target), None)
            assert again.offset_for_timestamp(target) == expected
        # and the reopened log keeps numbering where it stopped
        data = bytearray(build_batch([RecordInput(None, b"x", timestamp=5)]))
        assert again.append_as_leader(data, leader_epoch=3, now_ms=2_000).first_offset == (
            next_offset
        )
        again.close()
