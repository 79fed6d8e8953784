"""A small httpx client for Kafka Connect's REST API, with errors a person can act on.

Connect down → one `ConnectUnavailableError` naming the URL; an error answer → its `message`
field (Connect's own explanation, e.g. the config validation errors); a failed task → its Java
stack trace summarised to the exception and its causes.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

import httpx

from eventbus.sources.errors import ConnectRequestError, ConnectUnavailableError

# Connect answers 409 while the worker group rebalances; such a request is simply retried.
_REBALANCE_RETRIES = 10


def summarise_trace(trace: str | None, *, max_lines: int = 6) -> str:
    """A Java stack trace → its first line and each `Caused by:` line, without the frames."""
    if not trace:
        return "(no trace)"
    keep: list[str] = []
    for line in trace.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("at ", "...")) or stripped.startswith("Suppressed:"):
            continue
        if keep and not stripped.startswith("Caused by:"):
            continue  # continuation lines of a frame list or of a long message
        keep.append(re.sub(r"^Caused by:\s*", "caused by: ", stripped))
    unique = list(dict.fromkeys(keep))
    if len(unique) > max_lines:
        # The first line says what failed, the last cause usually why: keep both ends.
        unique = [*unique[: max_lines - 2], "...", unique[-1]]
    return "\n".join(unique)


# From healthy to broken: a state not listed counts as UNASSIGNED.
_SEVERITY: Final = {"RUNNING": 0, "RESTARTING": 1, "PAUSED": 2, "STOPPED": 2, "UNASSIGNED": 3, "FAILED": 4}


@dataclass(frozen=True, slots=True)
class TaskState:
    id: int
    state: str
    worker_id: str | None = None
    trace: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectorState:
    name: str
    state: str  # RUNNING, PAUSED, STOPPED, FAILED, UNASSIGNED, RESTARTING
    worker_id: str | None
    trace: str | None
    tasks: list[TaskState] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.state == "RUNNING" and bool(self.tasks) and all(t.state == "RUNNING" for t in self.tasks)

    @property
    def worst(self) -> str:
        """The worst state of the connector and its tasks (what a status header must show: a
        RUNNING connector with a FAILED task is not running)."""
        if self.state == "RUNNING" and not self.tasks:
            return "NO TASKS"
        states = [self.state, *(task.state for task in self.tasks)]
        return max(states, key=lambda state: _SEVERITY.get(state, _SEVERITY["UNASSIGNED"]))

    @property
    def failure(self) -> str | None:
        """Summarised trace of the connector or its first failed task, None when nothing failed."""
        if self.state == "FAILED":
            return f"connector {self.name} FAILED:\n{summarise_trace(self.trace)}"
        for task in self.tasks:
            if task.state == "FAILED":
                return f"connector {self.name} task {task.id} FAILED:\n{summarise_trace(task.trace)}"
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "worker_id": self.worker_id,
            "tasks": [
                {"id": t.id, "state": t.state, "worker_id": t.worker_id}
                | ({"error": summarise_trace(t.trace)} if t.state == "FAILED" else {})
                for t in self.tasks
            ],
        } | ({"error": summarise_trace(self.trace)} if self.state == "FAILED" else {})

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ConnectorState:
        connector = data.get("connector", {})
        return cls(
            name=data.get("name", ""),
            state=connector.get("state", "UNKNOWN"),
            worker_id=connector.get("worker_id"),
            trace=connector.get("trace"),
            tasks=[
                TaskState(t.get("id", i), t.get("state", "UNKNOWN"), t.get("worker_id"), t.get("trace"))
                for i, t in enumerate(data.get("tasks", []))
            ],
        )


class ConnectClient:
    """`GET/PUT/DELETE` on Connect's REST API. Use as a context manager."""

    def __init__(self, url: str, *, timeout: float = 30.0, transport: httpx.BaseTransport | None = None):
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)

    def __enter__(self) -> ConnectClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(_REBALANCE_RETRIES):
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as error:
                raise ConnectUnavailableError(
                    f"Kafka Connect is not reachable at {self.url} ({_reason(error)}); is the Connect "
                    "cluster running? Set --connect-url or EVENTBUS_CONNECT_URL to point elsewhere"
                ) from None
            if response.status_code == 409 and attempt + 1 < _REBALANCE_RETRIES:
                time.sleep(0.5 * (attempt + 1))
                continue
            return response
        return response

    def _checked(self, response: httpx.Response, what: str) -> httpx.Response:
        if response.is_success:
            return response
        try:
            message = response.json().get("message") or response.text
        except ValueError:
            message = response.text.strip() or response.reason_phrase
        raise ConnectRequestError(f"Kafka Connect refused to {what} (HTTP {response.status_code}): {message}")

    @staticmethod
    def _path(name: str, suffix: str = "") -> str:
        return f"/connectors/{quote(name, safe='')}{suffix}"

    # --- endpoints ------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        data: dict[str, Any] = self._checked(self._request("GET", "/"), "report its version").json()
        return data

    def list_connectors(self) -> list[str]:
        names: list[str] = self._checked(self._request("GET", "/connectors"), "list connectors").json()
        return sorted(names)

    def slot_names(self) -> set[str]:
        """The replication slot every registered connector reads (`slot.name`), in one request."""
        response = self._checked(
            self._request("GET", "/connectors", params={"expand": "info"}), "list connector configs"
        )
        configs = (entry.get("info", {}).get("config", {}) for entry in response.json().values())
        return {config["slot.name"] for config in configs if config.get("slot.name")}

    def get_config(self, name: str) -> dict[str, str] | None:
        response = self._request("GET", self._path(name, "/config"))
        if response.status_code == 404:
            return None
        config: dict[str, str] = self._checked(response, f"read the config of {name}").json()
        return config

    def validate(self, name: str, config: dict[str, str]) -> list[str]:
        """Connect's own check of a connector config (the plugin's validation, with the workers'
        config providers resolved): `field: message` per problem, empty when valid."""
        plugin = config["connector.class"].rsplit(".", 1)[-1]
        response = self._checked(
            self._request("PUT", f"/connector-plugins/{quote(plugin, safe='')}/config/validate",
                          json={**config, "name": name}),
            f"validate the config of {name}",
        )  # fmt: skip
        problems = []
        for entry in response.json().get("configs", []):
            value = entry.get("value") or {}
            problems += [f"{value.get('name')}: {error}" for error in value.get("errors") or []]
        return problems

    def put_config(self, name: str, config: dict[str, str]) -> bool:
        """Create or update; True when the connector was created."""
        response = self._checked(
            self._request("PUT", self._path(name, "/config"), json=config), f"accept the config of {name}"
        )
        return response.status_code == 201

    def task_configs(self, name: str) -> list[dict[str, str]]:
        response = self._checked(self._request("GET", self._path(name, "/tasks")), f"list tasks of {name}")
        return [task.get("config", {}) for task in response.json()]

    def status(self, name: str) -> ConnectorState | None:
        response = self._request("GET", self._path(name, "/status"))
        if response.status_code == 404:
            return None
        return ConnectorState.from_json(self._checked(response, f"report the status of {name}").json())

    def restart(self, name: str, *, only_failed: bool = True) -> None:
        params = {"includeTasks": "true", "onlyFailed": "true" if only_failed else "false"}
        self._checked(self._request("POST", self._path(name, "/restart"), params=params), f"restart {name}")

    def delete(self, name: str) -> bool:
        """False when there was no such connector."""
        response = self._request("DELETE", self._path(name))
        if response.status_code == 404:
            return False
        self._checked(response, f"delete {name}")
        return True

    def stop(self, name: str) -> bool:
        """Stop the connector (tasks shut down, config kept: Connect's offsets can then be changed).
        False when there was no such connector."""
        response = self._request("PUT", self._path(name, "/stop"))
        if response.status_code == 404:
            return False
        self._checked(response, f"stop {name}")
        return True

    def reset_offsets(self, name: str) -> None:
        """Forget the connector's source offsets (it must be STOPPED): a connector created again
        under this name then starts as new, with its snapshot mode, not where this one stopped."""
        self._checked(self._request("DELETE", self._path(name, "/offsets")), f"reset the offsets of {name}")

    def offsets(self, name: str) -> list[dict[str, Any]] | None:
        """The source offsets Connect keeps for a registered connector; None when Connect cannot say:
        before Kafka 3.5 (KIP-875) it has no such endpoint (404), so none is not "never streamed"."""
        response = self._request("GET", self._path(name, "/offsets"))
        if response.status_code in (404, 405):
            return None
        offsets: list[dict[str, Any]] = (
            self._checked(response, f"read offsets of {name}").json().get("offsets", [])
        )
        return offsets


def _reason(error: httpx.TransportError) -> str:
    text = str(error) or type(error).__name__
    if "Connection refused" in text or "ConnectError" in type(error).__name__:
        return "connection refused" if "refused" in text.lower() else text
    if isinstance(error, httpx.TimeoutException):
        return "timed out"
    return text
