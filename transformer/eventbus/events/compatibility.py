"""Will a new key/value schema break the consumers of its subject?

Two answers, because each alone is not enough:

* the registry's verdict (`POST /compatibility/subjects/<s>/versions/latest`), which is what will
  actually be enforced on registration — but Apicurio's ccompat API answers only
  `{"is_compatible": false}` and Confluent gives messages only in verbose mode;
* a local explanation from walking both schemas with Avro's resolution rules, so the user sees
  `field Amount: int → string` lines whatever the registry says.

Direction: under BACKWARD the *new* schema is the reader of data written with the *old* one; under
FORWARD the old schema reads data written with the new one; FULL is both. Messages are always
phrased old → new.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from confluent_kafka.schema_registry import RegisteredSchema, Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError as ClientRegistryError

from eventbus import defaults
from eventbus.events.errors import SchemaRegistryError
from eventbus.events.schema_form import PRIMITIVES, AvroSchema, as_json, full_name

DEFAULT_LEVEL = defaults.SCHEMA_COMPATIBILITY
LEVELS = frozenset(
    {"NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE"}
)
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


@dataclass(frozen=True, slots=True)
class CompatibilityResult:
    subject: str
    level: str
    level_source: Literal["subject", "global", "default"]
    latest_version: int | None
    registry_verdict: bool | None
    registry_messages: tuple[str, ...] = ()
    issues: tuple[Incompatibility, ...] = ()
    warnings: tuple[Incompatibility, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def unenforced(self) -> bool:
        """Under NONE the registry accepts anything: a verdict then proves nothing."""
        return self.level == "NONE"

    @property
    def compatible(self) -> bool:
        """The registry's verdict when it gave one (it is what registration enforces), else ours."""
        if self.registry_verdict is not None:
            return self.registry_verdict
        return not self.issues

    @property
    def new_subject(self) -> bool:
        return self.latest_version is None


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


# --- against the registry --------------------------------------------------------------------------


def check_compatibility(
    client: SchemaRegistryClient, subject: str, schema: AvroSchema, *, default_level: str = DEFAULT_LEVEL
) -> CompatibilityResult:
    """Check `schema` against what `subject` holds, with the registry's verdict and our reasons."""
    notes: list[str] = []
    level, source = _subject_level(client, subject, default_level, notes)
    latest = _latest(client, subject)
    if latest is None:
        notes.append("the subject has no versions yet: registering creates version 1")
        return CompatibilityResult(subject, level, source, None, None, notes=tuple(notes))
    olds: list[RegisteredSchema] = [latest]
    if level.endswith("_TRANSITIVE"):
        olds = [client.get_version(subject, v) for v in sorted(client.get_versions(subject))]
    issues: list[Incompatibility] = []
    warnings: list[Incompatibility] = []
    for old in olds:
        old_text = old.schema.schema_str
        if old_text is None:  # the client reads an answer without a "schema" field as None
            raise SchemaRegistryError(
                f"{subject}: the registry returned version {old.version} without its text"
            )
        found, warned = explain(schema, json.loads(old_text), level)
        version = old.version if len(olds) > 1 else None
        issues += [Incompatibility(i.path, i.message, version) for i in found]
        warnings += [Incompatibility(w.path, w.message, version) for w in warned]
    verdict, messages = _registry_verdict(client, subject, schema, level, notes)
    if verdict is True and issues:
        notes.append(
            f"the registry accepts this schema, but under {level} the local analysis finds problems; "
            "check the registry's compatibility level"
        )
    return CompatibilityResult(
        subject,
        level,
        source,
        latest.version,
        verdict,
        tuple(messages),
        tuple(issues),
        tuple(warnings),
        tuple(notes),
    )


def _subject_level(
    client: SchemaRegistryClient, subject: str, default: str, notes: list[str]
) -> tuple[str, Literal["subject", "global", "default"]]:
    """The level the registry applies to the subject, and where it comes from: the subject's own, the
    registry's global one, or (the registry reports none) `default`."""
    if _is_mock(client):
        # The `mock://` registry has no config endpoint; asking would retry HTTP for seconds.
        notes.append(f"the mock registry keeps no compatibility level; checked under {default}")
        return default, "default"
    try:
        own: str | None = client.get_compatibility(subject).upper()
    except ClientRegistryError as error:
        if error.http_status_code != 404:
            raise SchemaRegistryError(f"{subject}: reading its compatibility level failed: {error}") from None
        own = None  # Confluent's answer for a subject without a level of its own
    except Exception as error:
        notes.append(f"the registry did not report a compatibility level ({type(error).__name__})")
        return default, "default"
    effective = _effective_level(client, subject)
    if effective is not None:
        # Apicurio reports NONE for a subject without a level of its own, and enforces the global
        # one: only the registry's "subject or else global" answer says what applies.
        return effective, ("subject" if own == effective else "global")
    if own is not None:
        return own, "subject"
    try:
        global_level = client.get_compatibility().upper()
    except Exception:
        return default, "default"
    return global_level, "global"


def _effective_level(client: SchemaRegistryClient, subject: str) -> str | None:
    """`GET /config/<subject>?defaultToGlobal=true` (Confluent and Apicurio both answer it); None when
    the registry does not. The client has no parameter for it, hence its REST client."""
    try:
        answer = client._rest_client.get(
            f"config/{quote(subject, safe='')}", query={"defaultToGlobal": "true"}
        )
    except Exception:
        return None
    level = answer.get("compatibilityLevel") if isinstance(answer, dict) else None
    return level.upper() if isinstance(level, str) else None


def _is_mock(client: SchemaRegistryClient) -> bool:
    # confluent-kafka exports the mock class only from a private module; the name is stable.
    return type(client).__name__ == "MockSchemaRegistryClient"


def _latest(client: SchemaRegistryClient, subject: str) -> RegisteredSchema | None:
    try:
        return client.get_latest_version(subject)
    except ClientRegistryError as error:
        if error.http_status_code == 404:
            return None
        raise SchemaRegistryError(f"{subject}: reading the latest version failed: {error}") from None


def _registry_verdict(
    client: SchemaRegistryClient, subject: str, schema: AvroSchema, level: str, notes: list[str]
) -> tuple[bool | None, list[str]]:
    candidate = Schema(as_json(schema), "AVRO")
    if _is_mock(client):
        notes.append("the mock registry cannot check compatibility; the verdict is the local analysis")
        return None, []
    try:
        if level.endswith("_TRANSITIVE"):
            # `versions/latest` checks one version only; transitive levels need every version.
            verdict = bool(client.test_compatibility_all_versions(subject, candidate, verbose=True))
        else:
            verdict = bool(client.test_compatibility(subject, candidate, verbose=True))
    except Exception as error:
        notes.append(
            f"the registry could not run its compatibility check ({type(error).__name__}); "
            "the verdict is the local analysis"
        )
        return None, []
    if verdict:
        return True, []
    return False, _verbose_messages(client, subject, candidate)


def _verbose_messages(client: SchemaRegistryClient, subject: str, candidate: Schema) -> list[str]:
    # `test_compatibility` returns only the boolean and drops the `messages` a Confluent registry
    # sends in verbose mode; repeat the request through the client's own REST session (same auth)
    # to keep them. Apicurio sends none, which is why the local explanation exists.
    rest = getattr(client, "_rest_client", None)
    if rest is None:
        return []
    try:
        response = rest.post(
            f"compatibility/subjects/{subject}/versions/latest?verbose=true", body=candidate.to_dict()
        )
    except Exception:
        return []
    messages = response.get("messages") if isinstance(response, dict) else None
    return [str(m) for m in messages] if isinstance(messages, list) else []
