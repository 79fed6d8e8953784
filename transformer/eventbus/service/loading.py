"""Loading the mappings folder: every file compiled and checked before anything is consumed.

A service that starts with some mappings and silently skips a broken one would publish an
incomplete stream; so one invalid file stops start-up with every problem of every file, each as
`file:line:col: message`. What the loop needs comes out of here: which staging topics to subscribe
to, which mappings run for each (several may read one table), and the key/value schemas of every
curated topic for the serializer.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from eventbus.errors import ConfigError
from eventbus.events.avro import TopicSchemas
from eventbus.events.schema_form import canonical_form, load_schema_file
from eventbus.mapping.compiler import CompiledMapping, compile_mapping
from eventbus.mapping.discovery import discover
from eventbus.mapping.errors import MappingError, MappingErrors
from eventbus.mapping.spec import load_mapping
from eventbus.sources.naming import staging_topic


@dataclass(frozen=True, slots=True)
class MappingSet:
    """Compiled mappings, routed by the staging topic they read."""

    folder: Path
    mappings: tuple[CompiledMapping, ...]
    by_topic: dict[str, tuple[CompiledMapping, ...]]
    topic_schemas: tuple[TopicSchemas, ...]

    @property
    def staging_topics(self) -> list[str]:
        return sorted(self.by_topic)

    def by_name(self, name: str) -> CompiledMapping | None:
        return next((m for m in self.mappings if m.spec.name == name), None)

    def curated_topics(self) -> list[str]:
        return sorted(t.topic for t in self.topic_schemas)


def staging_topic_of(compiled: CompiledMapping) -> str:
    return staging_topic(compiled.spec.source.connector, compiled.spec.source.table)


def load_mapping_set(folder: Path, *, hash_salt: bytes | str = b"") -> MappingSet:
    """Compile every mapping under `folder`; raises `MappingErrors` (all files' errors) or `ConfigError`."""
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a folder of mapping files")
    files = discover([folder])
    if not files:
        raise ConfigError(f"{folder}: no mapping files (*.yaml) found")
    problems: list[MappingError] = []
    compiled: list[CompiledMapping] = []
    for path in files:
        try:
            compiled.append(compile_mapping(load_mapping(path), hash_salt=hash_salt))
        except MappingError as error:
            problems.append(error)
    seen: dict[str, CompiledMapping] = {}
    for mapping in compiled:
        other = seen.setdefault(mapping.spec.name, mapping)
        if other is not mapping:
            problems.append(
                MappingError(
                    f"mapping name {mapping.spec.name!r} is also used by {other.spec.file}",
                    file=mapping.spec.file,
                    line=1,
                    key_path="name",
                    hint="names identify mappings in event ids and the dead-letter topic",
                )
            )
    topic_schemas = _topic_schemas(compiled, problems)
    collected = MappingErrors.collect(problems)
    if collected is not None:
        raise collected
    by_topic: dict[str, list[CompiledMapping]] = defaultdict(list)
    for mapping in compiled:
        by_topic[staging_topic_of(mapping)].append(mapping)
    return MappingSet(
        folder,
        tuple(compiled),
        {topic: tuple(mappings) for topic, mappings in by_topic.items()},
        tuple(topic_schemas),
    )


def _topic_schemas(compiled: list[CompiledMapping], problems: list[MappingError]) -> list[TopicSchemas]:
    """One key and one value schema per curated topic; two mappings may share a topic only if they agree."""
    found: dict[str, tuple[TopicSchemas, CompiledMapping]] = {}
    for mapping in compiled:
        for plan in mapping.analysis.emits:
            try:
                schemas = TopicSchemas(
                    plan.topic,
                    load_schema_file(Path(plan.key_schema.path)),
                    load_schema_file(Path(plan.value_schema.path)),
                )
            except ConfigError as error:
                problems.append(MappingError(str(error), file=mapping.spec.file))
                continue
            known = found.get(plan.topic)
            if known is None:
                found[plan.topic] = (schemas, mapping)
                continue
            other, owner = known
            if canonical_form(other.key_schema) != canonical_form(schemas.key_schema) or canonical_form(
                other.value_schema
            ) != canonical_form(schemas.value_schema):
                problems.append(
                    MappingError(
                        f"topic {plan.topic!r} is written with different schemas here and in "
                        f"{owner.spec.file}; one topic has one key and one value schema",
                        file=mapping.spec.file,
                        key_path=f"emit[{plan.index}].topic",
                    )
                )
    return [schemas for schemas, _ in found.values()]
