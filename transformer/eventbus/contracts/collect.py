"""Mapping files → one contract per curated topic: its key schema, value schema, settings, producers.

A curated topic is the unit consumers depend on: the registry's subjects are `<topic>-key` and
`<topic>-value`, and the catalog lists one event per topic. Several mappings may write one topic
(e.g. two tables announcing the same business event), but a topic has exactly one key and one value
schema, so they must agree; disagreement is reported at each disagreeing `emit` block, with the other
file named, the same way every mapping error is (`file:line:col: key.path: message`). The topic's
settings (`emit.topic_settings`: partitions, replication factor, retention, cleanup policy) are
merged the same way: a block may leave a key out, two blocks that both give it must agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventbus.errors import ConfigError
from eventbus.events.avro import TopicSchemas, subject_name
from eventbus.events.schema_form import AvroSchema, canonical_form, load_schema_file
from eventbus.events.schema_lock import LOCK_FILE_NAME
from eventbus.mapping.analysis import analyse
from eventbus.mapping.compiler import CompiledMapping
from eventbus.mapping.discovery import discover
from eventbus.mapping.errors import MappingError, MappingErrors
from eventbus.mapping.sensitivity import NO_SOURCE_VALUE, is_protected_expression, publication
from eventbus.mapping.spec import (
    DEFAULT_CLEANUP_POLICY,
    DEFAULT_TOPIC_PARTITIONS,
    DEFAULT_TOPIC_RETENTION,
    PERSONAL,
    MappingSpec,
    TopicSettingsSpec,
    load_mapping,
    retention_ms,
)

DEFAULT_MAPPINGS = Path("mappings")


@dataclass(frozen=True, slots=True)
class Producer:
    """One emit block of one mapping that writes the topic."""

    spec: MappingSpec
    emit_index: int

    @property
    def where(self) -> str:
        return f"{self.spec.file or '<mapping>'} emit[{self.emit_index}]"


@dataclass(frozen=True, slots=True)
class TopicSettings:
    """A curated topic's settings once every producing block is merged and the defaults applied."""

    partitions: int = DEFAULT_TOPIC_PARTITIONS
    replication_factor: int | None = None  # None: the broker's default.replication.factor
    retention_ms: int = retention_ms(DEFAULT_TOPIC_RETENTION)  # -1: forever
    cleanup_policy: str = DEFAULT_CLEANUP_POLICY

    def config(self) -> dict[str, str]:
        """The topic configs Kafka is given (`retention.ms` only where deletion applies)."""
        config = {"cleanup.policy": self.cleanup_policy}
        if "delete" in self.cleanup_policy:
            config["retention.ms"] = str(self.retention_ms)
        return config


@dataclass(frozen=True, slots=True)
class TopicContract:
    """What a curated topic promises: one key schema, one value schema, its settings, who writes it."""

    topic: str
    key_schema: AvroSchema
    value_schema: AvroSchema
    producers: tuple[Producer, ...]
    settings: TopicSettings = TopicSettings()

    @property
    def schemas(self) -> TopicSchemas:
        return TopicSchemas(self.topic, self.key_schema, self.value_schema)

    @property
    def key_subject(self) -> str:
        return subject_name(self.topic, "key")

    @property
    def value_subject(self) -> str:
        return subject_name(self.topic, "value")

    def subjects(self) -> tuple[tuple[str, AvroSchema], tuple[str, AvroSchema]]:
        return self.schemas.subjects()

    @property
    def mappings(self) -> tuple[MappingSpec, ...]:
        """The producing mappings, each once, in file order."""
        seen: dict[int, MappingSpec] = {}
        for producer in self.producers:
            seen.setdefault(id(producer.spec), producer.spec)
        return tuple(seen.values())


def load_specs(paths: Sequence[Path] | None) -> list[MappingSpec]:
    """Load and check every mapping under `paths` (default `mappings/`); all files' errors at once."""
    roots = list(paths or [DEFAULT_MAPPINGS])
    missing = [str(p) for p in roots if not p.exists()]
    if missing:
        raise ConfigError(f"no such file or folder: {', '.join(missing)}")
    files = discover(roots)
    if not files:
        raise ConfigError(f"no mapping files (*.yaml) under {', '.join(str(p) for p in roots)}")
    specs: list[MappingSpec] = []
    problems: list[MappingError] = []
    for path in files:
        try:
            specs.append(load_mapping(path))
        except MappingError as error:
            problems.append(error)
    collected = MappingErrors.collect(problems)
    if collected is not None:
        raise collected
    return specs


def collect_contracts(mappings: Iterable[MappingSpec | CompiledMapping]) -> list[TopicContract]:
    """One `TopicContract` per curated topic, sorted by topic; raises `MappingErrors` on disagreement."""
    found: dict[str, tuple[AvroSchema, AvroSchema, list[Producer]]] = {}
    problems: list[MappingError] = []
    for mapping in mappings:
        spec = mapping.spec if isinstance(mapping, CompiledMapping) else mapping
        analysis = analyse(spec)  # cached on the spec: free for loaded mappings
        for plan in analysis.emits:
            path = ("emit", plan.index)
            try:
                key = load_schema_file(Path(plan.key_schema.path))
                value = load_schema_file(Path(plan.value_schema.path))
            except ConfigError as error:
                problems.append(spec.error(path, str(error)))
                continue
            producer = Producer(spec, plan.index)
            known = found.get(plan.topic)
            if known is None:
                found[plan.topic] = (key, value, [producer])
                continue
            known_key, known_value, producers = known
            differing = [
                part
                for part, ours, theirs in (("key", key, known_key), ("value", value, known_value))
                if canonical_form(ours) != canonical_form(theirs)
            ]
            if differing:
                first = producers[0]
                problems.append(
                    spec.error(
                        (*path, f"{differing[0]}_schema"),
                        f"topic {plan.topic!r} gets a different {' and '.join(differing)} schema here than "
                        f"from {first.where}",
                        hint="one topic has one key and one value schema: share the .avsc files, or "
                        "emit to another topic",
                    )
                )
                continue
            producers.append(producer)
    settings = {
        topic: _merged_settings(topic, producers, problems) for topic, (_, _, producers) in found.items()
    }
    for topic, (_, _, producers) in found.items():
        if len(producers) > 1:
            _check_personal_fields(topic, producers, problems)
    collected = MappingErrors.collect(problems)
    if collected is not None:
        raise collected
    return [
        TopicContract(topic, key, value, tuple(producers), settings[topic])
        for topic, (key, value, producers) in sorted(found.items())
    ]


def _merged_settings(topic: str, producers: list[Producer], problems: list[MappingError]) -> TopicSettings:
    """The keys the producing blocks give (first one wins; a different value is an error), then defaults."""
    given: dict[str, tuple[object, Producer]] = {}
    for producer in producers:
        block = producer.spec.emit[producer.emit_index].topic_settings
        if block is None:
            continue
        for name in TopicSettingsSpec.model_fields:
            if name not in block.model_fields_set:
                continue
            value = block.retention_ms if name == "retention" else getattr(block, name)
            first = given.setdefault(name, (value, producer))
            if first[0] != value:
                shown = getattr(first[1].spec.emit[first[1].emit_index].topic_settings, name)
                problems.append(
                    producer.spec.error(
                        ("emit", producer.emit_index, "topic_settings", name),
                        f"topic {topic!r}: {name} {getattr(block, name)!r} differs from {shown!r} "
                        f"given by {first[1].where}",
                        hint="one topic has one set of settings: give them in one place, or the same",
                    )
                )
    if "retention" in given and given.get("cleanup_policy", (None,))[0] == "compact":
        # Within one block the spec already says so; here the two keys come from different blocks.
        _, producer = given["retention"]
        problems.append(
            producer.spec.error(
                ("emit", producer.emit_index, "topic_settings", "retention"),
                f"topic {topic!r} is compacted ({given['cleanup_policy'][1].where}): a retention "
                "would not apply",
                hint="remove 'retention', or use cleanup_policy: compact,delete",
            )
        )
    defaults = TopicSettings()
    return TopicSettings(
        partitions=_given(given, "partitions", defaults.partitions),
        replication_factor=_given(given, "replication_factor", defaults.replication_factor),
        retention_ms=_given(given, "retention", defaults.retention_ms),
        cleanup_policy=_given(given, "cleanup_policy", defaults.cleanup_policy),
    )


def _check_personal_fields(topic: str, producers: list[Producer], problems: list[MappingError]) -> None:
    """A field one producer of a topic marks personal is published the same way by all of them:
    hashed or masked by every one, or as it is (`allow_pii`) by every one. Otherwise a consumer
    reading the catalog's "hashed" gets the plain value from the other mapping's events (and a key
    field's in their `ce_subject` header too)."""
    for part in ("key", "fields"):
        names = sorted({name for p in producers for name in getattr(p.spec.emit[p.emit_index], part)})
        for name in names:
            marking = next((p for p in producers if p.spec.sensitivity.get(name) in PERSONAL), None)
            if marking is None:
                continue
            level = marking.spec.sensitivity[name]
            plain: list[Producer] = []
            protecting: list[Producer] = []
            for producer in producers:
                value = getattr(producer.spec.emit[producer.emit_index], part).get(name)
                if value is not None:  # None: the schema's default, no source value
                    (protecting if is_protected_expression(value) else plain).append(producer)
            for producer in plain:
                spec = producer.spec
                path = ("emit", producer.emit_index, part, name)
                if spec.sensitivity.get(name) not in PERSONAL:
                    problems.append(
                        spec.error(
                            path,
                            f"topic {topic!r}: field {name!r} is marked {level} by {marking.where}, and "
                            f"this mapping publishes it as it is without marking it {level}",
                            hint=f"one field of a topic has one classification: mark it {level} here too, "
                            "and hash or mask it (or, after a privacy review, list it in allow_pii)",
                        )
                    )
                elif protecting:
                    problems.append(
                        spec.error(
                            path,
                            f"topic {topic!r}: field {name!r} is published as it is here (allow_pii) but "
                            f"hashed or masked by {protecting[0].where}: its consumers would get both",
                            hint="publish the field the same way in every mapping of the topic",
                        )
                    )
            _check_same_protection(topic, part, name, protecting, problems)


def _check_same_protection(
    topic: str, part: str, name: str, protecting: list[Producer], problems: list[MappingError]
) -> None:
    """Producers that all protect a personal field must protect it alike: a consumer joining or
    counting by the field would otherwise see one person as two values (a hash and a mask)."""
    first: tuple[frozenset[str], Producer] | None = None
    for producer in protecting:
        value = getattr(producer.spec.emit[producer.emit_index], part)[name]
        ways = (publication(value).ways or frozenset()) - {NO_SOURCE_VALUE}
        if not ways:
            continue  # a constant: no person's value either way
        if first is None:
            first = (ways, producer)
        elif ways != first[0]:
            problems.append(
                producer.spec.error(
                    ("emit", producer.emit_index, part, name),
                    f"topic {topic!r}: field {name!r} is {' and '.join(sorted(ways))} here but "
                    f"{' and '.join(sorted(first[0]))} by {first[1].where}: its consumers would get "
                    "two different values for one person",
                    hint="protect the field the same way (the same function and arguments) in every "
                    "mapping of the topic",
                )
            )


def _given(given: dict[str, tuple[object, Producer]], name: str, default: Any) -> Any:
    return given[name][0] if name in given else default


def default_lock_path(paths: Sequence[Path] | None) -> Path:
    """Where the lock file of these mappings lives: `schemas.lock.yaml` beside them.

    The folder the paths share; if a lock file already exists in a folder above it (up to the
    repository or working directory), that one, so that pinning a single mapping updates the same
    file the service reads for the whole folder.
    """
    roots = [p if p.is_dir() else p.parent for p in (paths or [DEFAULT_MAPPINGS])]
    base = roots[0] if len({r.resolve() for r in roots}) == 1 else _common(roots)
    here = Path.cwd().resolve()
    folder = base.resolve()
    while folder == here or here in folder.parents:  # never look outside the working directory
        if (folder / LOCK_FILE_NAME).exists():
            return (folder / LOCK_FILE_NAME).relative_to(here)
        if folder == here or (folder / ".git").exists():
            break
        folder = folder.parent
    return base / LOCK_FILE_NAME


def _common(roots: list[Path]) -> Path:
    resolved = [r.resolve() for r in roots]
    common = resolved[0]
    while not all(r == common or common in r.parents for r in resolved):
        common = common.parent
    try:
        return common.relative_to(Path.cwd().resolve())
    except ValueError:
        return common
