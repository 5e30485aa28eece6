"""Round trips of every message of every API version through the generated codecs.

Objects are drawn from the schema itself (hypothesis), encoded, decoded and compared:
any asymmetry between an encoder and its decoder -- a compact vs classic length, a
tagged field, a nullable -- shows up as a difference.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moldau.protocol.codec import MessageCodec, Struct
from moldau.protocol.errors import ProtocolDecodeError
from moldau.protocol.messages import ALL_APIS
from moldau.protocol.schema import Field

_INTS = {
    "int8": st.integers(-(2**7), 2**7 - 1),
    "int16": st.integers(-(2**15), 2**15 - 1),
    "int32": st.integers(-(2**31), 2**31 - 1),
    "int64": st.integers(-(2**63), 2**63 - 1),
    "uint16": st.integers(0, 2**16 - 1),
    "uint32": st.integers(0, 2**32 - 1),
}


def _primitive(type_name: str, nullable: bool) -> st.SearchStrategy[Any]:
    if type_name in _INTS:
        base = _INTS[type_name]
    elif type_name == "bool":
        base = st.booleans()
    elif type_name == "float64":
        base = st.floats(allow_nan=False)
    elif type_name == "string":
        base = st.text(max_size=20)
    elif type_name in ("bytes", "records"):
        base = st.binary(max_size=40)
    elif type_name == "uuid":
        base = st.builds(uuid.UUID, int=st.integers(0, 2**128 - 1))
    else:
        raise AssertionError(type_name)
    return st.one_of(st.none(), base) if nullable else base


def _field(cls: type[Struct], f: Field, version: int) -> st.SearchStrategy[Any]:
    nullable = f.nullable_in(version)
    item = _struct(getattr(cls, f.type), version) if f.is_struct else _primitive(f.type, False)
    if f.is_array:
        strategy = st.lists(item, max_size=3)
        return st.one_of(st.none(), strategy) if nullable else strategy
    if f.is_struct:
        return st.one_of(st.none(), item) if nullable else item
    return _primitive(f.type, nullable)


def _struct(cls: type[Struct], version: int) -> st.SearchStrategy[Any]:
    present = [f for f in cls._fields if f.present_in(version)]
    return st.builds(lambda **kw: cls(**kw), **{f.name: _field(cls, f, version) for f in present})


def _normalise(value: Any) -> Any:
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, Struct):
        return {f.name: _normalise(getattr(value, f.name)) for f in value._fields}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


CASES = [
    (api, version, is_request)
    for api in ALL_APIS.values()
    for version in range(api.min_version, api.max_version + 1)
    for is_request in (True, False)
]


@pytest.mark.parametrize(
    ("api", "version", "is_request"),
    CASES,
    ids=[f"{a.name}-v{v}-{'req' if r else 'resp'}" for a, v, r in CASES],
)
def test_round_trip(api: Any, version: int, is_request: bool) -> None:
    codec = MessageCodec(api)
    cls = codec.Request if is_request else codec.Response

    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_struct(cls, version))
    def check(obj: Any) -> None:
        out = bytearray()
        chunks: list[Any] = []
        codec.encoder(is_request, version)(obj, out, chunks)
        data = b"".join([*chunks, out])
        decoded, end = codec.decoder(is_request, version)(data, 0)
        assert end == len(data)
        want = {f.name: _normalise(getattr(obj, f.name)) for f in cls._fields if f.present_in(version)}
        got = {f.name: _normalise(getattr(decoded, f.name)) for f in cls._fields if f.present_in(version)}
        assert got == want

    check()


def test_truncated_input_is_a_decode_error() -> None:
    codec = MessageCodec(ALL_APIS[3])
    request = codec.Request(topics=[codec.Request.of("topics")(name="t")])
    data = codec.encode_request(9, request)
    for cut in range(len(data)):
        with pytest.raises(ProtocolDecodeError):
            codec.decode_request(9, data[:cut])


# -- nulls where the spec forbids them -------------------------------------------------


def _filled(cls: type[Struct], version: int) -> Any:
    """An object with every present field set: arrays of one item, structs built."""
    obj = cls()
    for f in cls._fields:
        if not f.present_in(version):
            continue
        if f.is_struct:
            item = _filled(getattr(cls, f.type), version)
            setattr(obj, f.name, [item] if f.is_array else item)
        elif f.is_array:
            setattr(obj, f.name, [_filled_primitive(f)])
        else:
            setattr(obj, f.name, _filled_primitive(f))
    return obj


def _filled_primitive(f: Field) -> Any:
    values = {"string": "s", "bytes": b"b", "records": b"r", "bool": True, "float64": 1.0,
              "uuid": uuid.UUID(int=1)}
    return values.get(f.type, 1)


def _null_slots(obj: Any, cls: type[Struct], version: int) -> list[tuple[Any, Field]]:
    """(object, field) for every array, string, bytes or records field, nested too."""
    found = []
    for f in cls._fields:
        if not f.present_in(version) or f.tag is not None:
            continue
        if f.is_array or f.type in ("string", "bytes", "records"):
            found.append((obj, f))
        if f.is_struct:
            value = getattr(obj, f.name)
            for item in value if f.is_array else [value]:
                found += _null_slots(item, getattr(cls, f.type), version)
    return found


@pytest.mark.parametrize(
    ("api", "version", "is_request"),
    CASES,
    ids=[f"{a.name}-v{v}-{'req' if r else 'resp'}" for a, v, r in CASES],
)
def test_null_is_refused_where_the_spec_forbids_it(api: Any, version: int, is_request: bool) -> None:
    """As Kafka's generated readers: "non-nullable field X was serialized as null" is a
    decode error, so no handler ever meets None where the protocol promises a value;
    where the spec allows null, it decodes to None."""
    codec = MessageCodec(api)
    cls = codec.Request if is_request else codec.Response
    obj = _filled(cls, version)
    for holder, f in _null_slots(obj, cls, version):
        saved = getattr(holder, f.name)
        setattr(holder, f.name, None)
        out = bytearray()
        chunks: list[Any] = []
        codec.encoder(is_request, version)(obj, out, chunks)
        data = b"".join([*chunks, out])
        setattr(holder, f.name, saved)
        if f.nullable_in(version):
            codec.decoder(is_request, version)(data, 0)
            continue
        with pytest.raises(ProtocolDecodeError, match=f"non-nullable field {f.name} was serialized as null"):
            codec.decoder(is_request, version)(data, 0)


def test_null_array_refused_through_decode_request() -> None:
    codec = MessageCodec(ALL_APIS[15])  # DescribeGroups: groups is never nullable
    for version in (0, 5):
        data = codec.encode_request(version, codec.Request(groups=None))
        with pytest.raises(ProtocolDecodeError, match="non-nullable field groups"):
            codec.decode_request(version, data)
    metadata = MessageCodec(ALL_APIS[3])  # Metadata: topics nullable from v1 on
    assert metadata.decode_request(1, metadata.encode_request(1, metadata.Request(topics=None))).topics is None
    with pytest.raises(ProtocolDecodeError):
        metadata.decode_request(0, metadata.encode_request(0, metadata.Request(topics=None)))
