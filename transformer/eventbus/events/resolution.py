"""Avro schema resolution, walked to explain why an old and a new schema cannot talk.

`explain(new, old, level)` gives `field Amount: int → string` lines whatever a registry says (see
`compatibility`, which adds the registry's verdict). Direction: under BACKWARD the *new* schema is the
reader of data written with the *old* one; under FORWARD the old schema reads data written with the
new one; FULL is both. Messages are always phrased old → new.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from eventbus import defaults
from eventbus.events.errors import SchemaRegistryError
from eventbus.events.schema_form import PRIMITIVES, AvroSchema, full_name

DEFAULT_LEVEL = defaults.SCHEMA_COMPATIBILITY
# Avro schema resolution: which writer types a reader of a given type accepts.
_PROMOTIONS: dict[str, frozenset[str]] = {
    "long": frozenset({"int"}),
    "float": frozenset({"int", "long"}),
    "double": frozenset({"int", "long", "float"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}

Direction = Literal["backward", "forward"]


@dataclass(frozen=True, slots=True)
class Incompatibility:
    """One reason old and new schemas cannot talk; `path` is the field path (`""` = the top)."""

    path: str
    message: str
    against_version: int | None = None

    def __str__(self) -> str:
        where = f"field {self.path}" if self.path else "schema"
        version = f" (against version {self.against_version})" if self.against_version else ""
        return f"{where}: {self.message}{version}"


# --- local explanation -----------------------------------------------------------------------------


def explain(
    new: AvroSchema, old: AvroSchema, level: str = DEFAULT_LEVEL
) -> tuple[list[Incompatibility], list[Incompatibility]]:
    """(issues, warnings) of replacing `old` by `new` under `level`; transitive levels are handled by
    the caller, which passes each older version in turn."""
    base = level.upper().removesuffix("_TRANSITIVE")
    if base not in {"NONE", "BACKWARD", "FORWARD", "FULL"}:
        raise SchemaRegistryError(f"unknown compatibility level {level!r}")
    walker = _Walker(new, old)
    if base in ("BACKWARD", "FULL"):
        walker.check(reader=new, writer=old, direction="backward")
    if base in ("FORWARD", "FULL"):
        walker.check(reader=old, writer=new, direction="forward")
    if base == "NONE":
        walker.issues.clear()
    return _dedupe(walker.issues), _dedupe(walker.warnings)


def _dedupe(items: Iterable[Incompatibility]) -> list[Incompatibility]:
    return list(dict.fromkeys(items))


def _collect_named(schema: Any, namespace: str | None, out: dict[str, dict[str, Any]]) -> None:
    if isinstance(schema, list):
        for branch in schema:
            _collect_named(branch, namespace, out)
        return
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    if isinstance(kind, dict | list):
        _collect_named(kind, namespace, out)
        return
    if kind in ("record", "error", "enum", "fixed"):
        name = full_name(schema["name"], schema.get("namespace", namespace))
        out[name] = {**schema, "name": name}
        inner = name.rpartition(".")[0] or None
        for f in schema.get("fields", ()):
            _collect_named(f["type"], inner, out)
    elif kind == "array":
        _collect_named(schema["items"], namespace, out)
    elif kind == "map":
        _collect_named(schema["values"], namespace, out)


class _Walker:
    def __init__(self, new: AvroSchema, old: AvroSchema) -> None:
        # Named types by full name, one table per side: a reference resolves within its own schema.
        self.new_named: dict[str, dict[str, Any]] = {}
        self.old_named: dict[str, dict[str, Any]] = {}
        _collect_named(new, None, self.new_named)
        _collect_named(old, None, self.old_named)
        self.issues: list[Incompatibility] = []
        self.warnings: list[Incompatibility] = []
        self._seen: set[tuple[str, str, str]] = set()

    def check(self, *, reader: AvroSchema, writer: AvroSchema, direction: Direction) -> None:
        self._direction = direction
        self._reader_named = self.new_named if direction == "backward" else self.old_named
        self._writer_named = self.old_named if direction == "backward" else self.new_named
        self._compare(reader, writer, "", None, None)

    # Helpers phrase everything old → new whatever the direction.
    def _old_new(self, reader: Any, writer: Any) -> tuple[Any, Any]:
        return (writer, reader) if self._direction == "backward" else (reader, writer)

    def _issue(self, path: str, message: str) -> None:
        self.issues.append(Incompatibility(path, message))

    def _resolve(self, schema: Any, namespace: str | None, named: dict[str, dict[str, Any]]) -> Any:
        if isinstance(schema, str) and schema not in PRIMITIVES:
            return named.get(full_name(schema, namespace)) or named.get(schema) or schema
        if isinstance(schema, dict) and isinstance(schema.get("type"), dict | list):
            return self._resolve(schema["type"], namespace, named)
        if isinstance(schema, dict) and schema.get("type") in ("record", "error", "enum", "fixed"):
            return named.get(full_name(schema["name"], schema.get("namespace", namespace)), schema)
        return schema

    def _compare(self, reader: Any, writer: Any, path: str, r_ns: str | None, w_ns: str | None) -> None:
        reader = self._resolve(reader, r_ns, self._reader_named)
        writer = self._resolve(writer, w_ns, self._writer_named)
        if isinstance(writer, list):
            # Every branch the writer may have used must be readable.
            for branch in writer:
                if not self._readable(reader, branch, r_ns, w_ns):
                    old, new = self._old_new(_name(reader), _name(branch))
                    if self._direction == "backward":
                        self._issue(path, f"{old} → {new}: the old schema's {old} values cannot be read")
                    else:
                        self._issue(path, f"{old} → {new}: consumers on the old schema cannot read {new}")
                else:
                    self._compare(self._pick(reader, branch, r_ns, w_ns), branch, path, r_ns, w_ns)
            return
        if isinstance(reader, list):
            match = self._pick(reader, writer, r_ns, w_ns)
            if match is None:
                old, new = self._old_new(_name(reader), _name(writer))
                self._issue(path, f"{old} → {new}: not a compatible type change")
            else:
                self._compare(match, writer, path, r_ns, w_ns)
            return
        r_kind, w_kind = _kind(reader), _kind(writer)
        if r_kind != w_kind:
            if w_kind not in _PROMOTIONS.get(r_kind, frozenset()):
                old, new = self._old_new(_name(reader), _name(writer))
                if self._direction == "backward":
                    self._issue(path, f"{old} → {new}: not a promotable type change")
                else:  # FORWARD/FULL: the old schema's consumers read the new values
                    widening = r_kind in _PROMOTIONS.get(w_kind, frozenset())
                    hint = " (a widening is backward compatible only; the subject also checks forward)"
                    self._issue(path, f"{old} → {new}: consumers on the old schema cannot read {new} values"
                                + (hint if widening else ""))  # fmt: skip
            return
        self._logical_warning(reader, writer, path)
        if r_kind in ("record", "error"):
            self._compare_records(reader, writer, path)
        elif r_kind == "enum":
            self._compare_enums(reader, writer, path)
        elif r_kind == "fixed":
            self._check_names(reader, writer, path)
            if reader["size"] != writer["size"]:
                old, new = self._old_new(reader["size"], writer["size"])
                self._issue(path, f"fixed size {old} → {new}")
        elif r_kind == "array":
            self._compare(reader["items"], writer["items"], f"{path}[]", r_ns, w_ns)
        elif r_kind == "map":
            self._compare(reader["values"], writer["values"], f"{path}.<value>", r_ns, w_ns)

    def _readable(self, reader: Any, writer: Any, r_ns: str | None, w_ns: str | None) -> bool:
        return self._pick(reader, writer, r_ns, w_ns) is not None

    def _pick(self, reader: Any, writer: Any, r_ns: str | None, w_ns: str | None) -> Any:
        """The reader branch Avro would resolve `writer` to: an exact match first, then a promotion."""
        writer = self._resolve(writer, w_ns, self._writer_named)
        branches = reader if isinstance(reader, list) else [reader]
        resolved = [self._resolve(b, r_ns, self._reader_named) for b in branches]
        w_kind = _kind(writer)
        for branch in resolved:
            if _kind(branch) == w_kind and (w_kind not in _NAMED or _short(branch) == _short(writer)):
                return branch
        for branch in resolved:
            if w_kind in _PROMOTIONS.get(_kind(branch), frozenset()):
                return branch
        return None

    def _check_names(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        # Avro matches named types by unqualified name, or by one of the reader's aliases.
        aliases = {alias.rpartition(".")[2] for alias in reader.get("aliases", ())}
        if _short(reader) != _short(writer) and _short(writer) not in aliases:
            old, new = self._old_new(_short(reader), _short(writer))
            self._issue(path, f"{_kind(reader)} renamed {old} → {new} without an alias")

    def _compare_records(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        key = (self._direction, reader["name"], writer["name"])
        if key in self._seen:  # recursive types
            return
        self._seen.add(key)
        self._check_names(reader, writer, path)
        r_ns = reader["name"].rpartition(".")[0] or None
        w_ns = writer["name"].rpartition(".")[0] or None
        writer_fields = {f["name"]: f for f in writer["fields"]}
        for w_field in writer["fields"]:
            for alias in w_field.get("aliases", ()):
                writer_fields.setdefault(alias, w_field)
        for r_field in reader["fields"]:
            field_path = f"{path}.{r_field['name']}" if path else r_field["name"]
            w_field = writer_fields.get(r_field["name"]) or next(
                (writer_fields[a] for a in r_field.get("aliases", ()) if a in writer_fields), None
            )
            if w_field is None:
                if "default" not in r_field:
                    if self._direction == "backward":
                        self._issue(
                            field_path, "added without a default (events written with the old schema lack it)"
                        )
                    else:
                        self._issue(
                            field_path,
                            "removed, and the old schema has no default for it (consumers on the old "
                            "schema need it)",
                        )
                continue
            self._compare(r_field["type"], w_field["type"], field_path, r_ns, w_ns)

    def _compare_enums(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        self._check_names(reader, writer, path)
        if "default" in reader:
            return
        unknown = [s for s in writer["symbols"] if s not in reader["symbols"]]
        for symbol in unknown:
            verb = "removed" if self._direction == "backward" else "added"
            self._issue(path, f"enum {_short(reader)}: symbol {symbol} {verb} and the reader has no default")

    def _logical_warning(self, reader: Any, writer: Any, path: str) -> None:
        if not (isinstance(reader, dict) and isinstance(writer, dict)):
            return
        r_attrs = tuple(reader.get(a) for a in ("logicalType", "precision", "scale"))
        w_attrs = tuple(writer.get(a) for a in ("logicalType", "precision", "scale"))
        if r_attrs != w_attrs:
            old, new = self._old_new(_name(reader), _name(writer))
            # Avro resolution ignores logical types, so registries accept this; the data's meaning
            # still changes (e.g. a decimal's scale moves the point), hence a warning.
            self.warnings.append(Incompatibility(path, f"{old} → {new}: the same bytes change meaning"))


_NAMED = frozenset({"record", "error", "enum", "fixed"})


def _kind(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "union"
    kind = schema["type"]
    return "record" if kind == "error" else kind


def _short(schema: Any) -> str:
    return schema["name"].rpartition(".")[2] if isinstance(schema, dict) and "name" in schema else ""


def _name(schema: Any) -> str:
    if isinstance(schema, str):
        return schema.rpartition(".")[2]
    if isinstance(schema, list):
        return "|".join(_name(b) for b in schema)
    kind = _kind(schema)
    logical = schema.get("logicalType")
    if logical == "decimal":
        return f"decimal({schema.get('precision')},{schema.get('scale', 0)})"
    if logical:
        return f"{logical}"
    if kind in _NAMED:
        return f"{kind} {_short(schema)}"
    if kind == "array":
        return f"array<{_name(schema['items'])}>"
    if kind == "map":
        return f"map<{_name(schema['values'])}>"
    return kind
