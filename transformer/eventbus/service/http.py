"""HTTP endpoints for the orchestrator and Prometheus: `/healthz`, `/readyz`, `/metrics`.

- `/healthz`: the process is alive and its loop is turning (a heartbeat younger than `stall_after_s`),
  and some Kafka broker answered within `broker_gone_after_s`; a stuck loop or a broker gone for
  longer fails it, so the orchestrator restarts the container (and says why it did).
- `/readyz`: mappings compiled, schema ids resolved, producer initialised, partitions assigned by the
  group (possibly none), not stopping.
- `/metrics`: the service's own Prometheus registry.

A small threaded stdlib server on a daemon thread: nothing here may slow the loop down, and the loop
only writes plain attributes that these handlers read.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from eventbus.errors import ConfigError


class Health:
    """Written by the loop, read by the HTTP thread."""

    def __init__(self, stall_after_s: float = 60.0, broker_gone_after_s: float = 120.0) -> None:
        self.stall_after_s = stall_after_s
        self.broker_gone_after_s = broker_gone_after_s
        self.ready = False
        self.stopping = False
        self.reason = "starting"
        self._beat = time.monotonic()
        # Since when no broker answers (monotonic), None while one does.
        self.broker_lost_since: float | None = None

    def beat(self) -> None:
        self._beat = time.monotonic()

    def broker_lost(self) -> None:
        if self.broker_lost_since is None:
            self.broker_lost_since = time.monotonic()

    def broker_back(self) -> None:
        self.broker_lost_since = None

    def alive(self) -> tuple[bool, str]:
        now = time.monotonic()
        age = now - self._beat
        if age > self.stall_after_s:
            return False, f"loop has not turned for {age:.0f}s"
        lost = self.broker_lost_since
        if lost is not None and now - lost > self.broker_gone_after_s:
            return False, f"no Kafka broker reachable for {now - lost:.0f}s"
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        if self.stopping:
            return False, "stopping"
        return (True, "ok") if self.ready else (False, self.reason)


class HealthServer:
    def __init__(self, host: str, port: int, health: Health, registry: CollectorRegistry) -> None:
        handler = _handler(health, registry)
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as error:  # the port taken (a second instance on the host), an unknown host
            raise ConfigError(
                f"cannot serve /healthz, /readyz and /metrics on {host}:{port} ({error.strerror or error}): "
                "set http.port (EVENTBUS_HTTP__PORT) to a free port, 0 for any, or http.host to an address "
                "of this host"
            ) from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="eventbus-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(health: Health, registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._status(*health.alive())
            elif path == "/readyz":
                self._status(*health.readiness())
            else:
                self._send(404, b"not found\n", "text/plain")

        def _status(self, ok: bool, reason: str) -> None:
            body = json.dumps({"status": "ok" if ok else "unavailable", "reason": reason}).encode()
            self._send(200 if ok else 503, body, "application/json")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # scrapes and probes every few seconds would drown the service's own log

    return Handler
