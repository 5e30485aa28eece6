"""Encoders and decoders generated from the compact message statements.

Theory of operation: for each :class:`~moldau.protocol.schema.Api` we build one Python
class per struct (holding the union of the fields of all versions, with Kafka's
defaults) and, lazily, one encoder and one decoder function per (message, version),
compiled from generated source so that the per-message work is straight-line code
with no interpretation of the schema at run time.

Encoders append to a ``bytearray`` and return a list of chunks: record data given as a
chunked payload (e.g. file slices for sendfile) is passed through untouched, so fetch
responses never copy log data. Decoders return memoryview slices for record data.
Unknown tagged fields are skipped, as Kafka requires of a receiver.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from moldau.protocol import primitives as p
from moldau.protocol.errors import ProtocolDecodeError
from moldau.protocol.schema import Api, Field

_MISSING = object()


class Struct:
    """Base of generated message classes; fields are plain attributes (``__slots__``)."""

    __slots__ = ()
    _fields: tuple[Field, ...] = ()

    def __repr__(self) -> str:
        inner = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in self._fields)
        return f"{type(self).__name__}({inner})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f.name) == getattr(other, f.name) for f in self._fields)

    @classmethod
    def of(cls, field_name: str) -> type[Struct]:
        """The struct class of an (array of) struct field, found by the field's name."""
        for f in cls._fields:
            if f.name == field_name and f.is_struct:
                found: type[Struct] = getattr(cls, f.type)
                return found
        raise KeyError(f"{cls.__name__} has no struct field {field_name!r}")

    def to_dict(self) -> dict[str, Any]:
        def conv(value: Any) -> Any:
            if isinstance(value, Struct):
                return value.to_dict()
            if isinstance(value, list):
                return [conv(v) for v in value]
            return value

        return {f.name: conv(getattr(self, f.name)) for f in self._fields}


def _make_class(name: str, fields: list[Field]) -> type[Struct]:
    """Build a slotted class whose constructor takes every field as a keyword."""
    namespace: dict[str, Any] = {"__slots__": tuple(f.name for f in fields), "_fields": tuple(fields)}
    params = []
    body = []
    env: dict[str, Any] = {"_MISSING": _MISSING}
    for i, f in enumerate(fields):
        params.append(f"{f.name}=_MISSING")
        env[f"_d{i}"] = f
        if f.is_array or (f.is_struct and f.default is None and f.nullable is None):
            body.append(f"    self.{f.name} = _d{i}.default_value() if {f.name} is _MISSING else {f.name}")
        else:
            env[f"_v{i}"] = f.default
            body.append(f"    self.{f.name} = _v{i} if {f.name} is _MISSING else {f.name}")
    src = f"def __init__(self, *, {', '.join(params)}):\n" + ("\n".join(body) or "    pass") + "\n"
    if not params:
        src = "def __init__(self):\n    pass\n"
    exec(src, env)  # noqa: S102 - generated from our own schema
    namespace["__init__"] = env["__init__"]
    cls = type(name, (Struct,), namespace)
    for f in fields:
        if f.is_struct:
            setattr(cls, f.type, _make_class(f.type, f.children))
    return cls


def _struct_class_for(parent: type[Struct], f: Field) -> type[Struct]:
    return getattr(parent, f.type)


# -- code generation -------------------------------------------------------------------

_FIXED = {
    "int8": ("I8", 1),
    "int16": ("I16", 2),
    "int32": ("I32", 4),
    "int64": ("I64", 8),
    "uint16": ("U16", 2),
    "uint32": ("U32", 4),
    "float64": ("F64", 8),
}


_CODES = {"int8": "b", "int16": "h", "int32": "i", "int64": "q", "uint16": "H", "uint32": "I",
          "float64": "d", "bool": "?"}


def _null_message(name: str) -> str:
    """Kafka's words for a null in a field whose spec forbids one."""
    return f"non-nullable field {name} was serialized as null"


class _Gen:
    """Accumulates generated functions for one message version."""

    def __init__(self, version: int, flexible: bool) -> None:
        self.version = version
        self.flexible = flexible
        self.lines: list[str] = []
        self.env: dict[str, Any] = {"p": p, "ProtocolDecodeError": ProtocolDecodeError}
        for _name, (struct_name, _size) in _FIXED.items():
            self.env[struct_name] = getattr(p, struct_name)
        self.counter = 0

    def name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    # decoding --------------------------------------------------------------------------

    def decoder(self, cls: type[Struct], fields: list[Field]) -> str:
        fname = self.name("dec")
        cls_name = self.name("C")
        self.env[cls_name] = cls
        v = self.version
        out = [f"def {fname}(buf, pos):", f"    o = {cls_name}()"]
        tagged = {}
        run: list[Field] = []
        for f in fields:
            if not f.present_in(v):
                continue
            if f.tag is not None:
                if self.flexible:
                    tagged[f.tag] = f
                continue
            if self._packable(f):
                run.append(f)
                continue
            out += self._read_run(run)
            out += ["    " + line for line in self._read_field(f, cls, "v")]
            out.append(f"    o.{f.name} = v")
        out += self._read_run(run)
        if self.flexible:
            if tagged:
                out.append("    n, pos = p.read_uvarint(buf, pos)")
                out.append("    for _ in range(n):")
                out.append("        tag, pos = p.read_uvarint(buf, pos)")
                out.append("        size, pos = p.read_uvarint(buf, pos)")
                out.append("        end = pos + size")
                first = True
                for tag, f in sorted(tagged.items()):
                    kw = "if" if first else "elif"
                    first = False
                    out.append(f"        {kw} tag == {tag}:")
                    out += ["            " + line for line in self._read_field(f, cls, "v")]
                    out.append(f"            o.{f.name} = v")
                out.append("        pos = end")
            else:
                # almost every struct carries no tagged field: one byte, 0
                out.append("    if buf[pos] == 0: pos += 1")
                out.append("    else: pos = p.skip_tagged_fields(buf, pos)")
        out.append("    return o, pos")
        self.lines += out
        return fname

    # runs of fixed-width fields: one struct call for several fields ------------------

    def _packable(self, f: Field) -> bool:
        return not f.is_array and (f.type in _FIXED or f.type == "bool")

    def _run_struct(self, run: list[Field]) -> tuple[str, int]:
        fmt = ">" + "".join(_CODES[f.type] for f in run)
        packer = struct.Struct(fmt)
        name = self.name("S")
        self.env[name] = packer
        return name, packer.size

    def _read_run(self, run: list[Field]) -> list[str]:
        if not run:
            return []
        name, size = self._run_struct(run)
        targets = ", ".join(f"o.{f.name}" for f in run)
        run.clear()
        return [f"    ({targets},) = {name}.unpack_from(buf, pos)", f"    pos += {size}"]

    def _write_run(self, run: list[Field]) -> list[str]:
        if not run:
            return []
        name, _ = self._run_struct(run)
        values = ", ".join(f"o.{f.name}" for f in run)
        run.clear()
        return [f"    out += {name}.pack({values})"]

    def _read_field(self, f: Field, parent: type[Struct], target: str) -> list[str]:
        v = self.version
        flex = self.flexible
        if f.is_array:
            lines = []
            if flex:
                lines.append("n = buf[pos]")
                lines.append("if n < 128: pos += 1")
                lines.append("else: n, pos = p.read_uvarint(buf, pos)")
                lines.append("n -= 1")
            else:
                lines += ["(n,) = I32.unpack_from(buf, pos); pos += 4"]
            lines.append("if n > len(buf) - pos: raise ProtocolDecodeError('array length exceeds frame')")
            if f.nullable_in(v):
                lines.append(f"if n < 0: {target} = None")
            else:
                # as Kafka's generated readers: a null where the spec forbids one is
                # malformed input, refused here so that no handler ever sees it
                lines.append(f"if n < 0: raise ProtocolDecodeError({_null_message(f.name)!r})")
            lines.append("else:")
            item = self.name("it")
            lines.append(f"    {item} = []")
            lines.append("    for _ in range(n):")
            if f.is_struct:
                sub = self.decoder(_struct_class_for(parent, f), f.children)
                lines.append(f"        x, pos = {sub}(buf, pos)")
            else:
                lines += ["        " + ln for ln in self._read_primitive(f.type, False, "x", f"{f.name} element")]
            lines.append(f"        {item}.append(x)")
            lines.append(f"    {target} = {item}")
            return lines
        if f.is_struct:
            sub = self.decoder(_struct_class_for(parent, f), f.children)
            if f.nullable_in(v):
                return [
                    "(flag,) = I8.unpack_from(buf, pos); pos += 1",
                    f"if flag < 0: {target} = None",
                    f"else: {target}, pos = {sub}(buf, pos)",
                ]
            return [f"{target}, pos = {sub}(buf, pos)"]
        return self._read_primitive(f.type, f.nullable_in(v), target, f.name)

    def _read_primitive(self, type_name: str, nullable: bool, target: str, name: str) -> list[str]:
        flex = self.flexible
        if type_name in _FIXED:
            struct_name, size = _FIXED[type_name]
            return [f"({target},) = {struct_name}.unpack_from(buf, pos); pos += {size}"]
        if type_name == "bool":
            return [f"{target} = buf[pos] != 0; pos += 1"]
        if type_name == "uuid":
            return [f"{target}, pos = p.read_uuid(buf, pos)"]
        reader = {
            "string": "read_compact_string" if flex else "read_string",
            "bytes": "read_compact_bytes" if flex else "read_bytes",
            "records": "read_compact_records" if flex else "read_records",
        }[type_name]
        lines = [f"{target}, pos = p.{reader}(buf, pos)"]
        if not nullable:
            lines.append(f"if {target} is None: raise ProtocolDecodeError({_null_message(name)!r})")
        return lines

    # encoding --------------------------------------------------------------------------

    def encoder(self, cls: type[Struct], fields: list[Field]) -> str:
        fname = self.name("enc")
        v = self.version
        out = [f"def {fname}(o, out, chunks):"]
        tagged = []
        run: list[Field] = []
        for f in fields:
            if not f.present_in(v):
                continue
            if f.tag is not None:
                if self.flexible:
                    tagged.append(f)
                continue
            if self._packable(f):
                run.append(f)
                continue
            out += self._write_run(run)
            out.append(f"    v = o.{f.name}")
            out += ["    " + line for line in self._write_field(f, cls)]
        out += self._write_run(run)
        if self.flexible:
            if not tagged:
                out.append("    out.append(0)")
            else:
                out.append("    tags = []")
                for f in sorted(tagged, key=lambda t: t.tag or 0):
                    dname = self.name("dflt")
                    self.env[dname] = f.default
                    out.append(f"    v = o.{f.name}")
                    cond = "v" if f.is_array else f"v != {dname}"
                    out.append(f"    if {cond}:")
                    out.append("        outer = out; out = bytearray()")
                    out += ["        " + line for line in self._write_field(f, cls)]
                    out.append(f"        tags.append(({f.tag}, bytes(out))); out = outer")
                out.append("    p.write_uvarint(out, len(tags))")
                out.append("    for tag, data in tags:")
                out.append("        p.write_uvarint(out, tag); p.write_uvarint(out, len(data)); out += data")
        if len(out) == 1:
            out.append("    pass")
        self.lines += out
        return fname

    def _write_field(self, f: Field, parent: type[Struct]) -> list[str]:
        v = self.version
        flex = self.flexible
        if f.is_array:
            lines = []
            if flex:
                lines += ["if v is None: out.append(0)", "else: p.write_uvarint(out, len(v) + 1)"]
            else:
                lines += ["out += I32.pack(-1 if v is None else len(v))"]
            lines.append("for x in (v or ()):")
            if f.is_struct:
                sub = self.encoder(_struct_class_for(parent, f), f.children)
                lines.append(f"    {sub}(x, out, chunks)")
            else:
                lines += ["    " + ln for ln in self._write_primitive(f.type, "x")]
            return lines
        if f.is_struct:
            sub = self.encoder(_struct_class_for(parent, f), f.children)
            if f.nullable_in(v):
                return [
                    "if v is None: out.append(0xff)",
                    f"else: out.append(1); {sub}(v, out, chunks)",
                ]
            return [f"{sub}(v, out, chunks)"]
        return self._write_primitive(f.type, "v")

    def _write_primitive(self, type_name: str, var: str) -> list[str]:
        flex = self.flexible
        if type_name in _FIXED:
            struct_name, _ = _FIXED[type_name]
            return [f"out += {struct_name}.pack({var})"]
        if type_name == "bool":
            return [f"out.append(1 if {var} else 0)"]
        if type_name == "uuid":
            return [f"out += {var}.bytes"]
        if type_name == "records":
            return [f"p.write_records(out, chunks, {var}, {flex})"]
        writer = {
            "string": "write_compact_string" if flex else "write_string",
            "bytes": "write_compact_bytes" if flex else "write_bytes",
        }[type_name]
        return [f"p.{writer}(out, {var})"]

    def compile(self) -> dict[str, Any]:
        exec("\n".join(self.lines), self.env)  # noqa: S102 - generated from our own schema
        return self.env


Decoder = Callable[[Any, int], tuple[Any, int]]
Encoder = Callable[[Any, bytearray, list[Any]], None]


class MessageCodec:
    """Request and response classes of one API and their per-version codecs."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.Request = _make_class(f"{api.name}Request", api.request_fields)
        self.Response = _make_class(f"{api.name}Response", api.response_fields)
        self._decoders: dict[tuple[bool, int], Decoder] = {}
        self._encoders: dict[tuple[bool, int], Encoder] = {}

    def _build(self, is_request: bool, version: int) -> tuple[Decoder, Encoder]:
        cls = self.Request if is_request else self.Response
        fields = self.api.request_fields if is_request else self.api.response_fields
        gen = _Gen(version, self.api.is_flexible(version))
        dec = gen.decoder(cls, fields)
        enc = gen.encoder(cls, fields)
        env = gen.compile()
        self._decoders[(is_request, version)] = env[dec]
        self._encoders[(is_request, version)] = env[enc]
        return env[dec], env[enc]

    def decoder(self, is_request: bool, version: int) -> Decoder:
        found = self._decoders.get((is_request, version))
        return found if found is not None else self._build(is_request, version)[0]

    def encoder(self, is_request: bool, version: int) -> Encoder:
        found = self._encoders.get((is_request, version))
        return found if found is not None else self._build(is_request, version)[1]

    def decode_request(self, version: int, buf: Any, pos: int = 0) -> Any:
        try:
            obj, _ = self.decoder(True, version)(buf, pos)
        except Exception as exc:  # struct.error, IndexError, UnicodeDecodeError, ...
            raise ProtocolDecodeError(f"malformed {self.api.name} v{version} request: {exc}") from exc
        return obj

    def decode_response(self, version: int, buf: Any, pos: int = 0) -> Any:
        try:
            obj, _ = self.decoder(False, version)(buf, pos)
        except Exception as exc:
            raise ProtocolDecodeError(f"malformed {self.api.name} v{version} response: {exc}") from exc
        return obj

    def encode_request(self, version: int, obj: Any) -> bytes:
        out = bytearray()
        chunks: list[Any] = []
        self.encoder(True, version)(obj, out, chunks)
        return b"".join([*chunks, out]) if chunks else bytes(out)

    def encode_response_body(self, version: int, obj: Any, out: bytearray) -> list[Any]:
        """Append the body to ``out``; returns the chunk list (``out`` is its tail)."""
        chunks: list[Any] = []
        self.encoder(False, version)(obj, out, chunks)
        chunks.append(out)
        return chunks


_CODECS: dict[int, MessageCodec] = {}


def codec_for(api: Api) -> MessageCodec:
    """The one codec of ``api`` in this process: its encoders and decoders are generated
    once, on first use, and shared by the handlers and the broker's own client."""
    codec = _CODECS.get(api.key)
    if codec is None:
        codec = _CODECS[api.key] = MessageCodec(api)
    return codec
