"""Catalog entries and the AsyncAPI document of the curated topics, generated from the mappings.

Backstage: the VA event bus lists each event as a `catalog-info.yaml` entity of the custom kind
`Event` (`apiVersion: backstage.io/v1alpha1`), as its developer portal's samples show: `metadata`
with `name` (kebab-case), `title`, `description`, `links`; `spec` with `type: event`, `lifecycle`,
`domain`, `sourceSystems` (systemName, teamName), `topics` (topic, environment). We write that shape
and add what the mappings know and the samples lack: `spec.owner` (required of Backstage's own kinds),
the event types, the key and value Avro schemas (as `definition` strings, as Backstage's `API` kind
carries its definitions), and every field's sensitivity with how personal data is protected.

The topic's provisioned settings (partitions, replication factor when declared, cleanup policy,
retention) go into the entity's `spec.topics` entry and the AsyncAPI channel's Kafka binding
(`partitions`, `replicas`, `topicConfiguration`).

AsyncAPI 3.0: one document, a channel per curated topic with its Kafka binding, one message whose
payload is the value's Avro schema (`schemaFormat: application/vnd.apache.avro;version=1.9.0`), whose
Kafka key is the key's Avro schema, and whose headers are the CloudEvents binary-mode headers the
producer writes (`events/headers.py`); and a `send` operation per channel.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import LiteralScalarString

from eventbus.contracts.collect import TopicContract
from eventbus.events.headers import MAPPING_HEADER, MAPPING_VERSION_HEADER
from eventbus.events.schema_form import AvroSchema
from eventbus.mapping.errors import MappingError, MappingErrors
from eventbus.mapping.sensitivity import protection
from eventbus.mapping.spec import PERSONAL, MappingSpec

CATALOG_FILE = "catalog-info.yaml"
ASYNCAPI_FILE = "asyncapi.yaml"
AVRO_FORMAT = "application/vnd.apache.avro;version=1.9.0"
BACKSTAGE_API_VERSION = "backstage.io/v1alpha1"
DEFAULT_LIFECYCLE = "experimental"  # what a mapping without `lifecycle:` is: not yet promised to anyone
# Backstage: 1-63 characters, [a-zA-Z0-9] runs separated by single '-', '_' or '.'.
ENTITY_NAME = re.compile(r"^(?=.{1,63}$)[a-zA-Z0-9]+(?:[-_.][a-zA-Z0-9]+)*$")
_SENSITIVITY_ORDER = ("unclassified", "public", "internal", "confidential", "pii", "phi")

# The headers `events/headers.py` writes (CloudEvents Kafka binding, binary mode) and what they mean.
CLOUDEVENTS_HEADERS: dict[str, tuple[str, bool]] = {
    "ce_specversion": ("CloudEvents version, always 1.0.", True),
    "ce_id": ("Deterministic event id (UUIDv5): a replayed or duplicated change carries the same id.", True),
    "ce_type": ("Event type, `<mapping name>.v<mapping version>`.", True),
    "ce_source": ("Where the change came from, `/<connector>/<schema>.<table>`.", True),
    "ce_subject": ("The key as text (`k1=v1,k2=v2` for several key fields).", True),
    "ce_time": ("Commit time of the source change (RFC 3339, UTC, milliseconds); absent if unknown.", False),
    "content-type": ("Content type of the value, application/avro (Confluent wire format).", True),
    MAPPING_HEADER: ("Name of the mapping that produced the event.", True),
    MAPPING_VERSION_HEADER: ("Version of that mapping.", True),
}


def entity_name(topic: str) -> str:
    """The Backstage name of a topic's event: kebab-case, as the bus's catalog names its events."""
    name = topic.replace("_", "-")
    if not ENTITY_NAME.match(name):
        raise ValueError(f"topic {topic!r} gives no valid Backstage entity name ({name!r})")
    return name


def _title(topic: str) -> str:
    return " ".join(word.capitalize() for word in re.split(r"[_.\-]+", topic) if word)


def _agreed(contract: TopicContract, attribute: str, problems: list[MappingError]) -> Any:
    """The value all producing mappings give `attribute` (None when none does); disagreement is an error."""
    values = {spec.name: getattr(spec, attribute) for spec in contract.mappings}
    distinct = {v for v in values.values() if v is not None}
    if len(distinct) > 1:
        first = contract.mappings[0]
        for spec in contract.mappings[1:]:
            if getattr(spec, attribute) != getattr(first, attribute):
                problems.append(
                    spec.error(
                        (attribute,),
                        f"{attribute} {getattr(spec, attribute)!r} differs from "
                        f"{getattr(first, attribute)!r} in {first.file}, which writes the same topic "
                        f"{contract.topic!r}",
                        hint="one event has one owner and one lifecycle",
                        at_key=True,
                    )
                )
    return next(iter(distinct), None)


def _type_name(schema: Any) -> str:
    if isinstance(schema, str):
        return schema.rpartition(".")[2]
    if isinstance(schema, list):
        return " | ".join(_type_name(branch) for branch in schema)
    logical = schema.get("logicalType")
    if logical == "decimal":
        return f"decimal({schema.get('precision')},{schema.get('scale', 0)})"
    if logical:
        return f"{logical} ({schema['type']})"
    kind = schema["type"]
    if kind in ("record", "enum", "fixed"):
        return f"{kind} {schema['name']}"
    if kind == "array":
        return f"array<{_type_name(schema['items'])}>"
    if kind == "map":
        return f"map<{_type_name(schema['values'])}>"
    return _type_name(kind)


def _protection(contract: TopicContract, part: str, name: str) -> str | None:
    """How the producers publish a personal field: `hashed`, `masked`, `as is (allowed by allow_pii
    in ...)`, ... (`mapping.sensitivity.protection`), each way once. Every producer counts, also one
    that does not mark the field personal itself (`collect_contracts` refuses one that publishes it
    as it is while another protects it or marks it personal)."""
    ways = set()
    for producer in contract.producers:
        block = producer.spec.emit[producer.emit_index]
        expression = (block.key if part == "key" else block.fields).get(name)
        ways.add(protection(producer.spec, name, expression))
    return "; ".join(sorted(ways)) or None


def field_sensitivity(contract: TopicContract) -> list[dict[str, Any]]:
    """Every key and value field with its type and the strictest sensitivity any producer declares."""
    rows: list[dict[str, Any]] = []
    for part, schema in (("key", contract.key_schema), ("value", contract.value_schema)):
        assert isinstance(schema, dict)  # mappings only accept record schemas
        for field in schema["fields"]:
            levels = [spec.sensitivity.get(field["name"], "unclassified") for spec in contract.mappings]
            level = max(levels, key=_SENSITIVITY_ORDER.index) if levels else "unclassified"
            row: dict[str, Any] = {
                "name": field["name"],
                "part": part,
                "type": _type_name(field["type"]),
                "sensitivity": level,
            }
            if field.get("doc"):
                row["description"] = field["doc"]
            protection = _protection(contract, part, field["name"]) if level in PERSONAL else None
            if protection:
                row["protection"] = protection
            rows.append(row)
    return rows


def _description(specs: tuple[MappingSpec, ...]) -> str:
    if len(specs) == 1:
        return specs[0].description.strip()
    return "\n\n".join(f"{spec.event_type}: {spec.description.strip()}" for spec in specs)


def _first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s", " ".join(text.split()), maxsplit=1)[0]


def _domain(specs: tuple[MappingSpec, ...]) -> str | None:
    # Mappings live in `mappings/<area>/`: the area is the business domain of their events.
    folders = {Path(spec.file).parent.name for spec in specs if spec.file}
    return folders.pop() if len(folders) == 1 else None


def _definition(schema: AvroSchema) -> LiteralScalarString:
    return LiteralScalarString(json.dumps(schema, indent=2) + "\n")


def _topic_settings(contract: TopicContract) -> dict[str, Any]:
    """The topic's provisioned settings (`emit.topic_settings`, `eventbus topics apply`): what a
    consumer plans by (partitions fix per-key order; retention, how far back it can replay)."""
    settings = contract.settings
    entry: dict[str, Any] = {"partitions": settings.partitions}
    if settings.replication_factor is not None:
        entry["replicationFactor"] = settings.replication_factor
    entry["cleanupPolicy"] = settings.cleanup_policy
    if "retention.ms" in settings.config():
        entry["retentionMs"] = settings.retention_ms  # -1: kept forever
    return entry


def _kafka_channel_binding(contract: TopicContract) -> dict[str, Any]:
    """AsyncAPI's Kafka channel binding 0.5.0: topic, partitions, replicas, topicConfiguration."""
    settings = contract.settings
    binding: dict[str, Any] = {"topic": contract.topic, "partitions": settings.partitions}
    if settings.replication_factor is not None:
        binding["replicas"] = settings.replication_factor
    configuration: dict[str, Any] = {"cleanup.policy": settings.cleanup_policy.split(",")}
    if "retention.ms" in settings.config():
        configuration["retention.ms"] = settings.retention_ms
    binding["topicConfiguration"] = configuration
    binding["bindingVersion"] = "0.5.0"
    return binding


def catalog_entity(contract: TopicContract, *, environment: str | None = None) -> dict[str, Any]:
    """The Backstage `Event` entity of one curated topic; raises `MappingErrors` for missing/conflicting
    owner or lifecycle."""
    problems: list[MappingError] = []
    specs = contract.mappings
    owner = _agreed(contract, "owner", problems)
    lifecycle = _agreed(contract, "lifecycle", problems) or DEFAULT_LIFECYCLE
    removal_date = _agreed(contract, "removal_date", problems)
    if owner is None:
        problems += [
            spec.error(("name",), "the catalog needs an 'owner': the team answering for it", at_key=True)
            for spec in specs
        ]
    collected = MappingErrors.collect(problems)
    if collected is not None:
        raise collected
    fields = field_sensitivity(contract)
    personal = sorted({row["sensitivity"] for row in fields if row["sensitivity"] in PERSONAL})
    topic_entry: dict[str, Any] = {"topic": contract.topic}
    if environment:
        topic_entry["environment"] = environment
    topic_entry |= _topic_settings(contract)
    spec: dict[str, Any] = {
        "type": "event",
        "lifecycle": lifecycle,
        "owner": owner,
    }
    domain = _domain(specs)
    if domain:
        spec["domain"] = domain
    if removal_date is not None:
        spec["removalDate"] = removal_date.isoformat()
    spec |= {
        "sourceSystems": sorted(
            ({"systemName": s.source.connector, "table": s.source.table, "teamName": owner} for s in specs),
            key=lambda entry: (entry["systemName"], entry["table"]),
        ),
        "topics": [topic_entry],
        "eventTypes": [s.event_type for s in specs],
        "schema": {
            "type": "avro",
            "keySubject": contract.key_subject,
            "valueSubject": contract.value_subject,
            "key": _definition(contract.key_schema),
            "value": _definition(contract.value_schema),
        },
        "fields": fields,
    }
    metadata: dict[str, Any] = {
        "name": entity_name(contract.topic),
        "title": _title(contract.topic),
        "description": _description(specs),
        "annotations": {
            "eventbus/topic": contract.topic,
            "eventbus/mappings": ", ".join(str(s.file or s.name) for s in specs),
        },
        "tags": ["avro", "kafka", *personal],
    }
    return {"apiVersion": BACKSTAGE_API_VERSION, "kind": "Event", "metadata": metadata, "spec": spec}


def asyncapi_document(
    contracts: Iterable[TopicContract], *, title: str = "Curated business events", version: str = "1.0.0"
) -> dict[str, Any]:
    """One AsyncAPI 3.0 document for all curated topics."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    schemas: dict[str, Any] = {"CloudEventsHeaders": _headers_schema()}
    for contract in contracts:
        topic = contract.topic
        key_ref, value_ref = f"{topic}-key", f"{topic}-value"
        schemas[key_ref] = {"schemaFormat": AVRO_FORMAT, "schema": contract.key_schema}
        schemas[value_ref] = {"schemaFormat": AVRO_FORMAT, "schema": contract.value_schema}
        specs = contract.mappings
        message: dict[str, Any] = {
            "name": topic,
            "title": _title(topic),
            "summary": _first_sentence(specs[0].description) if specs else _title(topic),
            "contentType": "application/avro",
            "headers": {"$ref": "#/components/schemas/CloudEventsHeaders"},
            "payload": {"$ref": f"#/components/schemas/{value_ref}"},
            "bindings": {
                "kafka": {
                    # The binding's key must be an AsyncAPI (JSON) schema: a `$ref` there matches both
                    # branches of its oneOf in the official JSON Schema, so the Avro key is described
                    # inline as JSON and also kept, as Avro, under components.schemas.
                    "key": key_as_json_schema(contract.key_schema, key_ref),
                    # Confluent wire format: magic byte + 4-byte schema id before the Avro body.
                    "schemaIdLocation": "payload",
                    "schemaIdPayloadEncoding": "confluent",
                    "schemaLookupStrategy": "TopicIdStrategy",
                    "bindingVersion": "0.5.0",
                }
            },
        }
        if specs:
            message["description"] = _description(specs)
            message["x-eventbus-event-types"] = [s.event_type for s in specs]
        sensitivity = {
            row["name"]: row["sensitivity"]
            for row in field_sensitivity(contract)
            if row["sensitivity"] != "unclassified"
        }
        if sensitivity:
            message["x-eventbus-sensitivity"] = sensitivity
        channels[topic] = {
            "address": topic,
            "title": _title(topic),
            "messages": {topic: message},
            "bindings": {"kafka": _kafka_channel_binding(contract)},
        }
        operations[f"send_{topic}"] = {
            "action": "send",
            "summary": f"The transformer publishes {_title(topic)} events.",
            "channel": {"$ref": f"#/channels/{topic}"},
            "messages": [{"$ref": f"#/channels/{topic}/messages/{topic}"}],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Business events published from database changes (Debezium → mappings → Avro). "
            "Generated by `eventbus catalog` from the mapping files; do not edit by hand.",
        },
        "defaultContentType": "application/avro",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas},
    }


_JSON_TYPES: dict[str, dict[str, Any]] = {
    "null": {"type": "null"},
    "boolean": {"type": "boolean"},
    "int": {"type": "integer", "format": "int32"},
    "long": {"type": "integer", "format": "int64"},
    "float": {"type": "number", "format": "float"},
    "double": {"type": "number", "format": "double"},
    "string": {"type": "string"},
    "bytes": {"type": "string", "format": "binary"},
}


def key_as_json_schema(schema: AvroSchema, component: str) -> dict[str, Any]:
    """The Avro key as an AsyncAPI schema (the Kafka binding's `key` accepts only that)."""
    described = _json_schema(schema)
    described["description"] = (
        f"Avro key, registered as subject {component}; the Avro schema is components.schemas.{component}."
    )
    return described


def _json_schema(schema: Any) -> dict[str, Any]:
    if isinstance(schema, str):
        return dict(_JSON_TYPES.get(schema, {}))  # a named type reference: any value
    if isinstance(schema, list):
        return {"oneOf": [_json_schema(branch) for branch in schema]}
    kind = schema["type"]
    if schema.get("logicalType") in ("timestamp-millis", "timestamp-micros"):
        return {"type": "integer", "format": "int64", "description": f"Avro {schema['logicalType']}"}
    if kind == "record":
        return {
            "type": "object",
            "title": schema["name"],
            "required": [f["name"] for f in schema["fields"] if "default" not in f],
            "properties": {f["name"]: _json_schema(f["type"]) for f in schema["fields"]},
        }
    if kind == "enum":
        return {"type": "string", "enum": list(schema["symbols"])}
    if kind == "array":
        return {"type": "array", "items": _json_schema(schema["items"])}
    if kind == "map":
        return {"type": "object", "additionalProperties": _json_schema(schema["values"])}
    if kind == "fixed":
        return {"type": "string", "format": "binary"}
    return _json_schema(kind)


def _headers_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "CloudEvents 1.0 Kafka binding, binary content mode, plus the producing mapping.",
        "required": [name for name, (_, required) in CLOUDEVENTS_HEADERS.items() if required],
        "properties": {
            name: {"type": "string", "description": description}
            for name, (description, _) in CLOUDEVENTS_HEADERS.items()
        },
    }


def dump_yaml(document: dict[str, Any]) -> str:
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 4096  # no folding: folded plain scalars end lines with spaces
    yaml.indent(mapping=2, sequence=4, offset=2)
    out = io.StringIO()
    yaml.dump(document, out)
    return "# Generated by `eventbus catalog` from the mapping files; do not edit by hand.\n" + out.getvalue()


def catalog_entities(
    contracts: Iterable[TopicContract], *, environment: str | None = None
) -> list[dict[str, Any]]:
    """Every topic's entity; raises one `MappingErrors` with every topic's problems (a missing owner in
    each of its mappings), so that one run lists all of them, each once, rather than the first topic's."""
    entities: list[dict[str, Any]] = []
    problems: list[MappingError] = []
    for contract in contracts:
        try:
            entities.append(catalog_entity(contract, environment=environment))
        except MappingError as error:
            problems.append(error)
    collected = MappingErrors.collect(problems)
    if collected is not None:
        # A mapping that writes two topics would otherwise be told twice of its missing owner.
        unique = {(e.file, e.line, e.column, e.message): e for e in collected.errors}
        raise MappingErrors(list(unique.values()))
    return entities


def write_catalog(contracts: list[TopicContract], out: Path, *, environment: str | None = None) -> list[Path]:
    """Write `<out>/<event>/catalog-info.yaml` per topic, a Location entity listing them, and
    `<out>/asyncapi.yaml`; returns the files written. Validates everything before writing anything."""
    entities = catalog_entities(contracts, environment=environment)
    document = asyncapi_document(contracts)
    written: list[Path] = []
    out.mkdir(parents=True, exist_ok=True)
    for entity in entities:
        folder = out / entity["metadata"]["name"]
        folder.mkdir(exist_ok=True)
        written.append(_write(folder / CATALOG_FILE, dump_yaml(entity)))
    location = {
        "apiVersion": BACKSTAGE_API_VERSION,
        "kind": "Location",
        "metadata": {"name": "eventbus-curated-events", "description": "The curated events of the producer."},
        "spec": {"targets": [f"./{e['metadata']['name']}/{CATALOG_FILE}" for e in entities]},
    }
    written.append(_write(out / CATALOG_FILE, dump_yaml(location)))
    written.append(_write(out / ASYNCAPI_FILE, dump_yaml(document)))
    return written


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
