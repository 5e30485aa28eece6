"""Cross-checks of the message statements against an independent implementation: kio.

kio (Aiven) generates one Python dataclass per (message, version) from Kafka's own JSON
message specs, with its own serializer. Two checks, for every API and every version
that both sides know:

* the schema: the fields present in a version (order, names, types, nullability, tags,
  stated defaults) and the flexible versions agree with kio's classes;
* the bytes: random kio messages (hypothesis) written by kio's serializer are decoded by
  our generated decoder and written again by our encoder, byte for byte the same.

kio knows only the versions Kafka 4.x still supports (e.g. Produce 3+, Fetch 4+); the
older versions our statements still describe are not covered here.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import os
import re
from importlib import import_module
from typing import Any

import pytest

pytest.importorskip("kio")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from kio.schema.index import api_key_map  # noqa: E402
from kio.serial import entity_writer  # noqa: E402
from kio.serial._introspect import (  # noqa: E402
    EntityField,
    EntityTupleField,
    PrimitiveTupleField,
    classify_field,
    get_field_tag,
    is_optional,
)
from kio.static.primitive import Records  # noqa: E402

from moldau.protocol.codec import MessageCodec  # noqa: E402
from moldau.protocol.messages import ALL_APIS  # noqa: E402
from moldau.protocol.schema import Api, Field  # noqa: E402

st.register_type_strategy(Records, st.binary(max_size=32).map(Records))

# kio's kafka_type names that are not wire primitives.
_KIO_TYPES = {
    "error_code": "int16",
    "timedelta_i32": "int32",
    "timedelta_i64": "int64",
    "datetime_i64": "int64",
}
# kio names Kafka's "...Ms" time fields without the suffix.
_TIME_TYPES = {"timedelta_i32", "timedelta_i64", "datetime_i64"}
_PRIMITIVE_CLASSES = {
    "i8": "int8",
    "i16": "int16",
    "i32": "int32",
    "i64": "int64",
    "u16": "uint16",
    "u32": "uint32",
    "f64": "float64",
    "bool": "bool",
    "str": "string",
    "bytes": "bytes",
    "Records": "records",
    "UUID": "uuid",
}


def _kio_versions(module_name: str) -> list[int]:
    package = import_module(f"kio.schema.{module_name}")
    assert package.__file__ is not None
    folder = os.path.dirname(package.__file__)
    return sorted(int(d[1:]) for d in os.listdir(folder) if re.fullmatch(r"v\d+", d))


def _kio_class(module_name: str, version: int, kind: str) -> type:
    module = import_module(f"kio.schema.{module_name}.v{version}.{kind}")
    found = [
        c
        for c in vars(module).values()
        if isinstance(c, type)
        and dataclasses.is_dataclass(c)
        and c.__module__ == module.__name__
        and getattr(getattr(c, "__type__", None), "name", None) == kind
    ]
    assert len(found) == 1, (module_name, version, kind, found)
    return found[0]


def _kio_primitive(f: dataclasses.Field[Any], cls: type) -> tuple[str, str | None]:
    kafka_type = f.metadata.get("kafka_type")
    if kafka_type:
        return _KIO_TYPES.get(kafka_type, kafka_type), kafka_type
    for klass in getattr(cls, "__mro__", (cls,)):
        if klass.__name__ in _PRIMITIVE_CLASSES:
            return _PRIMITIVE_CLASSES[klass.__name__], None
    raise AssertionError(f"unknown kio type {cls!r}")


def _kio_default(value: object, kafka_type: str | None) -> object:
    if isinstance(value, datetime.timedelta):
        return round(value.total_seconds() * 1000)
    if value is None and kafka_type == "datetime_i64":
        return -1  # kio maps Kafka's -1 timestamps to None
    return value


def _compare(ours: list[Field], kio_cls: type, version: int, flexible: bool, path: str) -> None:
    present = [f for f in ours if f.present_in(version) and (f.tag is None or flexible)]
    theirs = dataclasses.fields(kio_cls)  # type: ignore[arg-type]
    assert len(present) == len(theirs), (
        f"{path}: v{version} fields {[f.name for f in present]} vs kio {[f.name for f in theirs]}"
    )
    untagged_ours = [f for f in present if f.tag is None]
    untagged_theirs = [f for f in theirs if get_field_tag(f) is None]
    tagged_ours = sorted((f for f in present if f.tag is not None), key=lambda f: f.tag or 0)
    tagged_theirs = sorted(
        (f for f in theirs if get_field_tag(f) is not None), key=lambda f: get_field_tag(f) or 0
    )
    assert len(untagged_ours) == len(untagged_theirs), path
    pairs = list(zip(untagged_ours, untagged_theirs, strict=True))
    pairs += list(zip(tagged_ours, tagged_theirs, strict=True))
    for mine, kio_field in pairs:
        where = f"{path}.{mine.name} v{version}"
        kind = classify_field(kio_field)
        kafka_type = None
        if isinstance(kind, EntityTupleField | EntityField):
            their_type = kind.type_.__name__
        elif isinstance(kind, PrimitiveTupleField):
            their_type, kafka_type = _kio_primitive(kio_field, kind.type_)
        else:
            their_type, kafka_type = _kio_primitive(kio_field, kind.type_)
        their_name = kio_field.name + ("_ms" if kafka_type in _TIME_TYPES else "")
        assert mine.name == their_name, f"{where}: name vs kio {kio_field.name}"
        assert mine.type == their_type, f"{where}: type {mine.type} vs kio {their_type}"
        their_array = isinstance(kind, EntityTupleField | PrimitiveTupleField)
        assert mine.is_array == their_array, f"{where}: array-ness"
        assert mine.tag == get_field_tag(kio_field), f"{where}: tag"
        # kio types every uuid as optional (the zero uuid reads as None) and Kafka's -1
        # timestamps as None: nullability says nothing there.
        if mine.type != "uuid" and kafka_type != "datetime_i64":
            assert mine.nullable_in(version) == is_optional(kio_field), f"{where}: nullable"
        if (
            mine.tag is None
            and not mine.is_array
            and not mine.is_struct
            and kio_field.default is not dataclasses.MISSING
            and mine.type != "uuid"
        ):
            assert mine.default == _kio_default(kio_field.default, kafka_type), (
                f"{where}: default {mine.default!r} vs kio {kio_field.default!r}"
            )
        if isinstance(kind, EntityTupleField | EntityField):
            _compare(mine.children, kind.type_, version, flexible, f"{path}.{mine.name}")


def _cases() -> list[tuple[Api, str, int]]:
    cases = []
    for key, api in sorted(ALL_APIS.items()):
        for version in _kio_versions(api_key_map[key]):
            cases.append((api, api_key_map[key], version))
    return cases


CASES = _cases()


@pytest.mark.parametrize("key", sorted(ALL_APIS))
def test_version_ranges_match_kio(key: int) -> None:
    api = ALL_APIS[key]
    versions = _kio_versions(api_key_map[key])
    # Ours may reach below kio's oldest version (Kafka 4 dropped some old versions that
    # these statements still describe); the newest version must be the same.
    assert api.max_version == versions[-1]
    assert api.min_version <= versions[0]
    module_name = api_key_map[key]
    for version in versions:
        for kind in ("request", "response"):
            flexible = _kio_class(module_name, version, kind).__flexible__
            assert api.is_flexible(version) == flexible, (api.name, version, kind)


@pytest.mark.parametrize(
    ("api", "module_name", "version"), CASES, ids=[f"{a.name}-v{v}" for a, _, v in CASES]
)
def test_schema_matches_kio(api: Api, module_name: str, version: int) -> None:
    flexible = api.is_flexible(version)
    for kind, fields in (("request", api.request_fields), ("response", api.response_fields)):
        kio_cls = _kio_class(module_name, version, kind)
        _compare(fields, kio_cls, version, flexible, f"{api.name}{kind.title()}")


_CODECS: dict[int, MessageCodec] = {}


def _codec(api: Api) -> MessageCodec:
    if api.key not in _CODECS:
        _CODECS[api.key] = MessageCodec(api)
    return _CODECS[api.key]


@pytest.mark.parametrize("kind", ["request", "response"])
@pytest.mark.parametrize(
    ("api", "module_name", "version"), CASES, ids=[f"{a.name}-v{v}" for a, _, v in CASES]
)
def test_kio_bytes_round_trip(api: Api, module_name: str, version: int, kind: str) -> None:
    kio_cls = _kio_class(module_name, version, kind)
    codec = _codec(api)
    write = entity_writer(kio_cls)

    @settings(
        max_examples=8,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(st.from_type(kio_cls))
    def check(message: Any) -> None:
        buffer = io.BytesIO()
        write(buffer, message)
        data = buffer.getvalue()
        if kind == "request":
            decoded = codec.decode_request(version, data)
            again = codec.encode_request(version, decoded)
        else:
            decoded = codec.decode_response(version, data)
            chunks = codec.encode_response_body(version, decoded, bytearray())
            again = b"".join(bytes(c) for c in chunks)
        assert again == data

    check()
