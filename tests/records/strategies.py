"""Hypothesis strategies shared by the records tests."""

from __future__ import annotations

from hypothesis import strategies as st

from moldau.records import Compression, RecordInput

#: Timestamps as clients send them: -1 (none) or milliseconds since the epoch,
#: within a range that keeps deltas realistic but crosses varint size classes.
timestamps = st.one_of(st.just(-1), st.integers(min_value=0, max_value=2**45))

nullable_bytes = st.one_of(st.none(), st.binary(max_size=64))

header_keys = st.text(max_size=12)  # hypothesis' default alphabet has no surrogates

headers = st.lists(st.tuples(header_keys, nullable_bytes), max_size=3)

record_inputs = st.builds(
    RecordInput,
    key=nullable_bytes,
    value=nullable_bytes,
    headers=headers,
    timestamp=timestamps,
)

record_lists = st.lists(record_inputs, min_size=1, max_size=20)

codecs = st.sampled_from(list(Compression))
