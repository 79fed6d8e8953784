"""Avro schema helpers shared by the serializer, the lock file and the compatibility check.

`canonical_form` is Avro's Parsing Canonical Form (full names, only parsing attributes, fixed key
order, no whitespace) *extended* with `logicalType`, `precision`, `scale` and `default`. Plain PCF
drops those, so it would call `decimal(12,2)` and `decimal(12,4)` the same schema although the
same bytes then mean different amounts; defaults are kept because changing one changes the
contract consumers see even though the encoding does not change.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import fastavro

from eventbus.errors import ConfigError

AvroSchema = dict[str, Any] | list[Any] | str

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "error", "enum", "fixed"})
_LOGICAL_ATTRS = ("logicalType", "precision", "scale")


def load_schema_file(path: Path) -> AvroSchema:
    """Read an `.avsc` file and check it is a valid Avro schema (errors name the file)."""
    try:
        raw = path.read_bytes()
        schema: AvroSchema = json.loads(raw.decode("utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read schema file: {error.strerror}") from None
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise ConfigError(
            f"{path}:{line}: file is not UTF-8 (byte 0x{raw[error.start]:02x} at line {line}): "
            "save it as UTF-8"
        ) from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}:{error.lineno}:{error.colno}: invalid JSON: {error.msg}") from None
    try:
        fastavro.parse_schema(schema)
    except Exception as error:  # fastavro raises several unrelated types for bad schemas
        raise ConfigError(f"{path}: not a valid Avro schema: {error}") from None
    return schema


def as_json(schema: AvroSchema) -> str:
    """The schema text sent to the registry (compact, key order as written)."""
    return json.dumps(schema, separators=(",", ":"))


def full_name(name: str, namespace: str | None) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def canonical_form(schema: AvroSchema | str) -> str:
    """Extended Parsing Canonical Form of a schema given as a parsed object or as JSON text."""
    if isinstance(schema, str) and schema.lstrip().startswith(("{", "[", '"')):
        schema = json.loads(schema)
    return json.dumps(_canonical(schema, None, set()), separators=(",", ":"))


def fingerprint(schema: AvroSchema | str) -> str:
    """`sha256:<hex>` of the extended canonical form; stable across whitespace, docs and key order."""
    return "sha256:" + hashlib.sha256(canonical_form(schema).encode()).hexdigest()


def _canonical(schema: Any, namespace: str | None, seen: set[str]) -> Any:
    if isinstance(schema, str):
        return schema if schema in PRIMITIVES else full_name(schema, namespace)
    if isinstance(schema, list):
        return [_canonical(branch, namespace, seen) for branch in schema]
    kind = schema["type"]
    if not isinstance(kind, str):
        return _canonical(kind, namespace, seen)
    if kind in NAMED:
        name = full_name(schema["name"], schema.get("namespace", namespace))
        if name in seen:
            return name
        seen.add(name)
        inner_ns = name.rpartition(".")[0] or None
        out: dict[str, Any] = {"name": name, "type": "record" if kind == "error" else kind}
        if kind in ("record", "error"):
            fields = []
            for field in schema["fields"]:
                canon_field = {"name": field["name"], "type": _canonical(field["type"], inner_ns, seen)}
                if "default" in field:
                    canon_field["default"] = field["default"]
                fields.append(canon_field)
            out["fields"] = fields
        elif kind == "enum":
            out["symbols"] = list(schema["symbols"])
            if "default" in schema:
                out["default"] = schema["default"]
        else:
            out["size"] = schema["size"]
    elif kind == "array":
        out = {"type": "array", "items": _canonical(schema["items"], namespace, seen)}
    elif kind == "map":
        out = {"type": "map", "values": _canonical(schema["values"], namespace, seen)}
    elif kind in PRIMITIVES:
        if not any(attr in schema for attr in _LOGICAL_ATTRS):
            return kind
        out = {"type": kind}
    else:
        return full_name(kind, namespace)
    for attr in _LOGICAL_ATTRS:
        if attr in schema:
            out[attr] = schema[attr]
    return out
