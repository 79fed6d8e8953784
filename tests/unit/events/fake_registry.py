"""An Apicurio-like Confluent-compatible registry behind the real `SchemaRegistryClient`, over
`httpx.MockTransport`: the HTTP requests the client makes are the ones it makes in production, and a
test can set levels, delete subjects, and inject 5xx answers, transport errors and concurrent writes.

The confluent-kafka mock (`mock://`) has no config, compatibility or by-id endpoints; this one does.
Ids are per content (the same schema text under two subjects has one id), as in both registries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient

# The HTTP library the client itself uses (httpx2 when installed, else httpx): its transport and types.
from confluent_kafka.schema_registry.common._httpx_compat import httpx

from eventbus.events.avro import connect_registry
from eventbus.events.resolution import explain
from eventbus.events.schema_form import canonical_form

URL = "http://registry.test/apis/ccompat/v7"
RULE_EXISTS = "A rule named 'COMPATIBILITY' already exists."


@dataclass
class Fault:
    """Answer the next `times` requests matching `method` and the `path` regex with `status`
    (None: a transport error, the connection refused)."""

    method: str
    path: str
    status: int | None
    times: int = 1


@dataclass
class FakeRegistry:
    global_level: str = "BACKWARD"
    levels: dict[str, str] = field(default_factory=dict)  # subjects' own levels
    versions: dict[str, list[int]] = field(default_factory=dict)  # subject → schema id per version
    deleted: set[str] = field(default_factory=set)
    schemas: dict[int, str] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    # Called before a PUT config/<subject> is applied: a concurrent replica's write lands first.
    before_set_level: Callable[[str], None] | None = None

    def client(self) -> SchemaRegistryClient:
        client = connect_registry(URL, **{"max.retries": 0})
        client._rest_client.session = httpx.Client(transport=httpx.MockTransport(self.handle))
        return client

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        text = json.dumps(schema)
        schema_id = next(
            (i for i, t in self.schemas.items() if canonical_form(t) == canonical_form(text)),
            len(self.schemas) + 1,
        )
        self.schemas[schema_id] = text
        ids = self.versions.setdefault(subject, [])
        if schema_id not in ids:
            ids.append(schema_id)
        return schema_id

    def level_of(self, subject: str) -> str:
        return self.levels.get(subject, self.global_level)

    # --- HTTP -------------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/apis/ccompat/v7/")
        self.requests.append(f"{request.method} {path}")
        for fault in self.faults:
            if fault.times > 0 and fault.method == request.method and re.fullmatch(fault.path, path):
                fault.times -= 1
                if fault.status is None:
                    raise httpx.ConnectError("connection refused", request=request)
                return _error(fault.status, fault.status * 100 + 1, "injected failure")
        body = json.loads(request.content) if request.content else None
        return self._route(request.method, path, request.url.params, body)

    def _route(self, method: str, path: str, params: Any, body: Any) -> httpx.Response:
        parts = path.split("/")
        live = {s: ids for s, ids in self.versions.items() if s not in self.deleted}
        if method == "GET" and path == "subjects":
            return _ok(sorted(live))
        if parts[0] == "config":
            return self._config(method, parts[1] if len(parts) > 1 else None, params, body)
        if parts[0] == "schemas" and parts[1] == "ids":
            schema_id = int(parts[2])
            if schema_id not in self.schemas:
                return _error(404, 40403, "Schema not found")
            if len(parts) == 4:  # schemas/ids/<id>/versions: deleted subjects are left out
                pairs = [
                    {"subject": s, "version": ids.index(schema_id) + 1}
                    for s, ids in live.items()
                    if schema_id in ids
                ]
                return _ok(pairs)
            return _ok({"schema": self.schemas[schema_id]})
        if parts[0] == "compatibility":
            subject = parts[2]
            if subject not in live:
                return _error(404, 40401, "Subject not found")
            old = json.loads(self.schemas[live[subject][-1]])
            issues = explain(json.loads(body["schema"]), old, self.level_of(subject))[0]
            return _ok({"is_compatible": not issues})
        if parts[0] == "subjects":
            return self._subject(method, parts[1], parts[2:], body, live)
        return _error(404, -1, "no such API")

    def _config(self, method: str, subject: str | None, params: Any, body: Any) -> httpx.Response:
        if subject is None:
            return _ok({"compatibilityLevel": self.global_level})
        if method == "PUT":
            existed = subject in self.levels
            if self.before_set_level is not None:
                self.before_set_level(subject)
            if not existed and subject in self.levels:
                # Apicurio decided to create the rule; one created meanwhile makes that a conflict
                return _error(409, 409, RULE_EXISTS)
            self.levels[subject] = body["compatibility"]
            return _ok({"compatibility": body["compatibility"]})
        if params.get("defaultToGlobal") == "true":
            return _ok({"compatibilityLevel": self.level_of(subject)})
        if subject not in self.levels:
            return _error(404, 40408, "Subject does not have subject-level compatibility configured")
        return _ok({"compatibilityLevel": self.levels[subject]})

    def _subject(
        self, method: str, subject: str, rest: list[str], body: Any, live: dict[str, list[int]]
    ) -> httpx.Response:
        ids = live.get(subject)
        if method == "POST" and not rest:  # lookup
            wanted = canonical_form(body["schema"])
            found = [(n, i) for n, i in enumerate(ids or [], 1) if canonical_form(self.schemas[i]) == wanted]
            if not found:
                return _error(404, 40403, "Schema not found")
            version, schema_id = found[-1]
            return _ok(_version(subject, version, schema_id, self.schemas[schema_id]))
        if method == "POST" and rest == ["versions"]:
            if ids and self.level_of(subject) != "NONE":
                old = json.loads(self.schemas[ids[-1]])
                if explain(json.loads(body["schema"]), old, self.level_of(subject))[0]:
                    return _error(409, 409, "Incompatible schema")
            return _ok({"id": self.register(subject, json.loads(body["schema"]))})
        if not ids:
            return _error(404, 40401, f"Subject '{subject}' not found.")
        if rest == ["versions"]:
            return _ok(list(range(1, len(ids) + 1)))
        version = len(ids) if rest[1] == "latest" else int(rest[1])
        if not 1 <= version <= len(ids):
            return _error(404, 40402, "Version not found")
        return _ok(_version(subject, version, ids[version - 1], self.schemas[ids[version - 1]]))


def _version(subject: str, version: int, schema_id: int, text: str) -> dict[str, Any]:
    return {"subject": subject, "version": version, "id": schema_id, "schema": text}


def _ok(body: Any) -> httpx.Response:
    return httpx.Response(200, json=body)


def _error(status: int, code: int, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error_code": code, "message": message})
