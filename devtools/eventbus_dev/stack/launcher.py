"""Bring the local stack up, down, and report on it.

`up` is idempotent: a service whose process is ours and alive is left alone; a stale pid file is
cleared; a port held by a foreign process is an error naming the port and the setting to change.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable
from dataclasses import dataclass

from eventbus_dev.stack.artifacts import Artifacts, ensure_artifacts
from eventbus_dev.stack.errors import PortInUseError, StackError
from eventbus_dev.stack.process import port_is_open
from eventbus_dev.stack.services import (
    ConnectService,
    KafkaService,
    PostgresService,
    RegistryService,
    Service,
)
from eventbus_dev.stack.settings import StackSettings
from eventbus_dev.stack.transactions import CURE_PERIOD_S, OPEN_MINUTES_DEFAULT, HangingTransaction

Log = Callable[[str], None]

_PORT_SETTINGS = {
    "postgres": ["EVENTBUS_STACK_POSTGRES_PORT"],
    "kafka": ["EVENTBUS_STACK_KAFKA_PORT", "EVENTBUS_STACK_KAFKA_CONTROLLER_PORT"],
    "registry": ["EVENTBUS_STACK_REGISTRY_PORT", "EVENTBUS_STACK_REGISTRY_MANAGEMENT_PORT"],
    "connect": ["EVENTBUS_STACK_CONNECT_PORT"],
}


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    pid: int | None
    endpoint: str
    state: str  # "ready", "starting" (ours, not answering), "dead" (exited unasked), "stopped"
    log_file: str

    @property
    def healthy(self) -> bool:
        return self.state == "ready"


class LocalStack:
    """The four services, in start order."""

    def __init__(self, settings: StackSettings | None = None, log: Log | None = None) -> None:
        self.settings = settings or StackSettings()
        self.log: Log = log or (lambda _message: None)
        self.postgres = PostgresService(self.settings)
        self.kafka = KafkaService(self.settings)
        self.registry = RegistryService(self.settings)
        self.connect = ConnectService(self.settings)

    @property
    def services(self) -> list[Service]:
        return [self.postgres, self.kafka, self.registry, self.connect]

    def service(self, name: str) -> Service:
        for candidate in self.services:
            if candidate.name == name:
                return candidate
        known = ", ".join(s.name for s in self.services)
        raise StackError(f"unknown service {name!r}; the stack has: {known}")

    def up(self) -> list[ServiceStatus]:
        """Start whatever is not running and wait until every service answers."""
        self.settings.state.mkdir(parents=True, exist_ok=True)
        # Two `up`s at once (a test session and a shell) must not both start the same service.
        with (self.settings.state / ".up.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return self._up()

    def _up(self) -> list[ServiceStatus]:
        artifacts = ensure_artifacts(self.settings, self.log)
        # Independent services start together; each dependant starts once what it needs is ready.
        self._start(self.postgres, artifacts)
        self._start(self.kafka, artifacts)
        self._wait_ready(self.postgres)
        self.postgres.ensure_database(self.settings.registry_database)
        self._start(self.registry, artifacts)
        self._wait_ready(self.kafka)
        if not self.connect.process.is_running():
            # A worker would hang at start-up reading its internal topics up to a transaction that
            # never ends (transactions.py); end such transactions first.
            self._abort_hanging_transactions(artifacts)
        self._start(self.connect, artifacts)
        self._wait_ready(self.registry)
        if self.registry.enforce_compatibility("BACKWARD"):
            self.log("registry: global compatibility set to BACKWARD (as the event bus)")
        # A transaction can be lost while the worker starts (a broker restart): look again while it waits.
        self._wait_ready(
            self.connect,
            every=(CURE_PERIOD_S, lambda: self._abort_hanging_transactions(artifacts)),
        )
        return self.status()

    def abort_hanging_transactions(
        self, open_minutes: int = OPEN_MINUTES_DEFAULT
    ) -> list[HangingTransaction]:
        """Abort the transactions the broker's coordinator lost (a stuck Connect worker's cure)."""
        return self._abort_hanging_transactions(ensure_artifacts(self.settings, self.log), open_minutes)

    def _abort_hanging_transactions(
        self, artifacts: Artifacts, open_minutes: int = OPEN_MINUTES_DEFAULT
    ) -> list[HangingTransaction]:
        try:
            hanging = self.kafka.abort_hanging_transactions(artifacts, open_minutes)
        except StackError as error:
            # A cure that cannot run now (the broker restarting, a race with the coordinator) must
            # not stop the stack: the next look tries again.
            self.log(f"kafka: hanging transactions not cured this time ({error}); trying again later")
            return []
        for transaction in hanging:
            self.log(f"kafka: aborted a hanging transaction on {transaction}")
        return hanging

    def _start(self, service: Service, artifacts: object) -> None:
        if service.process.is_running():
            self.log(f"{service.name}: already running (pid {service.process.pid()})")
            return
        for port, setting in zip(service.ports, _PORT_SETTINGS[service.name], strict=True):
            if port_is_open(self.settings.host, port):
                raise PortInUseError(
                    f"port {port} ({service.name}) is in use by a process this stack did not start; "
                    f"stop that process or choose another port with {setting}=..."
                )
        self.log(f"{service.name}: starting on {service.endpoint}")
        service.start(artifacts)  # type: ignore[arg-type]

    def _wait_ready(
        self, service: Service, every: tuple[float, Callable[[], object]] | None = None
    ) -> None:
        """Until `service` is ready; `every` = (period in seconds, what to do each period meanwhile)."""
        started = time.monotonic()
        period, action = every if every is not None else (float("inf"), None)
        deadline, next_call = started + self.settings.start_timeout_s, started + period
        while time.monotonic() < deadline:
            if action is not None and time.monotonic() >= next_call:
                action()
                next_call = time.monotonic() + period
            if service.is_ready():
                self.log(f"{service.name}: ready on {service.endpoint}")
                return
            if not service.process.is_running():
                raise StackError(
                    f"{service.name} exited during start-up; last lines of {service.process.log_file}:\n"
                    f"{service.process.tail(40)}"
                )
            time.sleep(0.5)
        raise StackError(
            f"{service.name} did not become ready within {self.settings.start_timeout_s:.0f}s; "
            f"see {service.process.log_file}:\n{service.process.tail(40)}"
        )

    def down(self) -> list[str]:
        """Stop the services this stack started, dependants first. Returns the names stopped."""
        stopped = []
        from eventbus_dev.stack.docker_engine import DockerEngine

        if DockerEngine(self.settings).stop():  # only ours: started by `image build` or the tests
            self.log("docker: stopped")
            stopped.append("docker")
        for service in reversed(self.services):
            if service.process.stop(stop_signal=service.stop_signal):
                self.log(f"{service.name}: stopped")
                stopped.append(service.name)
        return stopped

    def status(self) -> list[ServiceStatus]:
        result = []
        for service in self.services:
            had_pid_file = service.process.pid_file.exists()
            pid = service.process.pid()
            if pid is None:
                # A pid file without its process: it died or was killed, not stopped by `down`.
                state = "dead" if had_pid_file else "stopped"
            else:
                state = "ready" if service.is_ready() else "starting"
            result.append(
                ServiceStatus(service.name, pid, service.endpoint, state, str(service.process.log_file))
            )
        return result
