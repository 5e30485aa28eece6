"""A compact statement of Kafka protocol messages, and its parser.

Theory of operation: every API is written once, in ``moldau.protocol.messages``, as an
:class:`Api` whose request and response bodies are indented field lists transcribed
from the Kafka protocol's published message specs. This module parses those lists into
:class:`Field` trees; :mod:`moldau.protocol.codec` turns each (message, version) into a
generated encoder and decoder. Nothing here does I/O.

A field line reads ``name: TYPE [VERSIONS] [null=VERSIONS] [tag=N] [default=VALUE]``:

* ``TYPE`` is a primitive (``int8 int16 int32 int64 uint16 uint32 float64 bool string
  bytes records uuid``), ``[]T`` for an array of a primitive or of a struct named ``T``
  whose fields follow indented deeper, or a bare ``StructName`` for one nested struct.
  A trailing ``?`` makes the field nullable in all of its versions.
* ``VERSIONS`` is ``3+``, ``0-4`` or ``5``; omitted means every version.
* ``tag=N`` marks a tagged field (present only in flexible versions).
* ``default=`` gives the value a field takes in versions where it is absent.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

PRIMITIVES = frozenset(
    {
        "int8",
        "int16",
        "int32",
        "int64",
        "uint16",
        "uint32",
        "float64",
        "bool",
        "string",
        "bytes",
        "records",
        "uuid",
    }
)

ZERO_UUID = uuid.UUID(int=0)


@dataclass(frozen=True)
class VersionRange:
    """An inclusive range of versions; ``high`` is None for an open range ``N+``."""

    low: int
    high: int | None

    def __contains__(self, version: object) -> bool:
        assert isinstance(version, int)
        return version >= self.low and (self.high is None or version <= self.high)

    @classmethod
    def parse(cls, text: str) -> VersionRange:
        text = text.strip()
        if text == "none":
            return cls(1 << 30, 1 << 30)
        if text.endswith("+"):
            return cls(int(text[:-1]), None)
        if "-" in text:
            low, high = text.split("-")
            return cls(int(low), int(high))
        return cls(int(text), int(text))


ALL_VERSIONS = VersionRange(0, None)


@dataclass
class Field:
    """One field of a message or struct, with the versions it exists in."""

    name: str
    type: str  # primitive name, or the struct name for structs and struct arrays
    is_array: bool
    versions: VersionRange
    nullable: VersionRange | None
    tag: int | None
    default: object
    children: list[Field] = field(default_factory=list)

    @property
    def is_struct(self) -> bool:
        return self.type not in PRIMITIVES

    def present_in(self, version: int) -> bool:
        return version in self.versions

    def nullable_in(self, version: int) -> bool:
        return self.nullable is not None and version in self.nullable

    def default_value(self) -> object:
        """A fresh default (arrays get a new list each time)."""
        if self.is_array:
            return None if self.default is None and self.nullable else []
        return self.default


_LINE = re.compile(r"^(?P<name>[a-z_][a-z0-9_]*):\s*(?P<type>(\[\])?[A-Za-z0-9_]+)(?P<q>\?)?(?P<rest>.*)$")


def _default_for(type_name: str, is_array: bool, raw: str | None) -> object:
    if is_array:
        return None if raw == "null" else []
    if raw is None:
        if type_name in ("string",):
            return ""
        if type_name == "bytes":
            return b""
        if type_name == "records":
            return None
        if type_name == "bool":
            return False
        if type_name == "float64":
            return 0.0
        if type_name == "uuid":
            return ZERO_UUID
        if type_name in PRIMITIVES:
            return 0
        return None  # nested struct: built on demand
    if raw == "null":
        return None
    if type_name == "bool":
        return raw == "true"
    if type_name == "float64":
        return float(raw)
    if type_name == "string":
        return raw.strip("\"'")
    if type_name in ("int8", "int16", "int32", "int64", "uint16", "uint32"):
        return int(raw, 0)
    return raw


def parse_fields(text: str) -> list[Field]:
    """Parse an indented field list into a tree of :class:`Field`."""
    roots: list[Field] = []
    stack: list[tuple[int, Field]] = []
    for lineno, raw_line in enumerate(text.splitlines(), 1):
        stripped = raw_line.split("#", 1)[0].rstrip()
        if not stripped.strip():
            continue
        indent = len(stripped) - len(stripped.lstrip())
        match = _LINE.match(stripped.strip())
        if match is None:
            raise ValueError(f"line {lineno}: cannot parse field {stripped.strip()!r}")
        type_text = match["type"]
        is_array = type_text.startswith("[]")
        type_name = type_text[2:] if is_array else type_text
        versions = ALL_VERSIONS
        nullable: VersionRange | None = None
        tag: int | None = None
        default_raw: str | None = None
        for token in match["rest"].split():
            if token.startswith("null="):
                nullable = VersionRange.parse(token[5:])
            elif token.startswith("tag="):
                tag = int(token[4:])
            elif token.startswith("default="):
                default_raw = token[8:]
            else:
                versions = VersionRange.parse(token)
        if match["q"]:
            nullable = versions
        new = Field(
            name=match["name"],
            type=type_name,
            is_array=is_array,
            versions=versions,
            nullable=nullable,
            tag=tag,
            default=_default_for(type_name, is_array, default_raw),
        )
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if stack:
            stack[-1][1].children.append(new)
        else:
            roots.append(new)
        if new.is_struct:
            stack.append((indent, new))
    return roots


class Api:
    """One Kafka API: its key, version range, flexible versions and message bodies."""

    def __init__(
        self,
        *,
        key: int,
        name: str,
        versions: str,
        flexible: str,
        request: str,
        response: str,
    ) -> None:
        self.key = key
        self.name = name
        low, _, high = versions.partition("-")
        self.min_version = int(low)
        self.max_version = int(high or low)
        self.flexible = VersionRange.parse(flexible)
        self.request_fields = parse_fields(request)
        self.response_fields = parse_fields(response)

    def is_flexible(self, version: int) -> bool:
        return version in self.flexible

    def __repr__(self) -> str:
        return f"Api({self.name}, key={self.key}, v{self.min_version}-{self.max_version})"
