"""A Docker engine for building and running the transformer's image: the one that answers, or ours.

Where no engine answers and we are root on a Debian-like machine, Debian's `docker.io` is installed
and `dockerd` runs as a process of the stack: data under `.stack/docker/`, no bridge and no firewall
changes (`--iptables=false --bridge=none`), so containers use the host's network (`--network host`).
`stack down` stops it. Every such fallback is named in `Engine.notes`, for the caller to print.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from eventbus_dev.stack.errors import StackError
from eventbus_dev.stack.process import ManagedProcess
from eventbus_dev.stack.settings import StackSettings

_DEBIAN_CLIENT = Path("/usr/bin/docker")  # Debian's client, matched to its engine, BuildKit built in
_SOCKET_PATH_MAX = 100  # a unix socket path must fit in 108 bytes
_START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Engine:
    """How to talk to a running engine."""

    client: str
    host: str  # DOCKER_HOST
    ours: bool
    notes: list[str] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "1"}

    def docker(
        self, *args: str, check: bool = True, timeout: float | None = 120, input: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`docker ARGS` against this engine; raises StackError with its output when it fails."""
        result = subprocess.run(
            [self.client, *args], env=self.env(), capture_output=True, text=input is None,
            timeout=timeout, check=False, input=input,
        )  # fmt: skip
        if check and result.returncode != 0:
            output = (
                result.stderr if isinstance(result.stderr, str) else result.stderr.decode(errors="replace")
            )
            raise StackError(
                f"docker {' '.join(args[:3])} failed ({result.returncode}): {output.strip()[-2000:]}"
            )
        return result


class DockerEngine:
    """Finds an engine that answers, or installs and starts Debian's as a process of ours."""

    name = "docker"

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.folder = settings.state / "docker"
        digest = hashlib.sha256(str(self.folder).encode()).hexdigest()[:10]
        # containerd's sockets live under the exec root: keep its path short whatever the checkout's.
        self.exec_root = Path(f"/run/eventbus-docker-{digest}")
        socket = self.folder / "docker.sock"
        if len(str(socket)) > _SOCKET_PATH_MAX:
            socket = self.exec_root.with_name(f"eventbus-docker-{digest}.sock")
        self.socket = socket
        self.process = ManagedProcess(
            name=self.name,
            pid_file=settings.state / "run" / "docker.pid",
            log_file=settings.state / "logs" / "docker.log",
            marker=str(self.folder / "data"),
        )

    # --- public -----------------------------------------------------------------------------------

    def ensure(self) -> Engine:
        """An engine that answers `docker info`: an existing one, else ours (started, installed)."""
        client = self._client()
        if client is not None and not self.process.is_running():
            existing = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
            if _answers(client, existing):
                return Engine(client, existing, ours=False)
        notes: list[str] = []
        if not self.process.is_running():
            if shutil.which("dockerd") is None:
                self._install(notes)
            client = self._client()
            self._start(notes)
        assert client is not None  # installed with the engine
        engine = Engine(client, f"unix://{self.socket}", ours=True, notes=notes)
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not _answers(client, engine.host):
            if not self.process.is_running():
                raise StackError(
                    f"dockerd exited; its log ({self.process.log_file}):\n{self.process.tail(30)}"
                )
            if time.monotonic() > deadline:
                raise StackError(
                    f"dockerd did not answer within {_START_TIMEOUT_S:.0f}s; see {self.process.log_file}"
                )
            time.sleep(0.3)
        return engine

    def stop(self) -> bool:
        """Stop our dockerd (its containers stop with it). Whether something was stopped."""
        return self.process.stop(timeout=30.0)

    # --- helpers ----------------------------------------------------------------------------------

    def _client(self) -> str | None:
        if _DEBIAN_CLIENT.exists():
            return str(_DEBIAN_CLIENT)
        return shutil.which("docker")

    def _install(self, notes: list[str]) -> None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise StackError(
                "no Docker engine answers and dockerd is not installed: start Docker, or install "
                "Debian's engine as root (apt-get install docker.io) and run again"
            )
        notes.append("no Docker engine answered: installed Debian's docker.io (apt-get)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "docker.io"],
        ):
            result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise StackError(f"{' '.join(command)} failed: {result.stderr.strip()[-1500:]}")

    def _start(self, notes: list[str]) -> None:
        if os.geteuid() != 0:
            raise StackError(
                "no Docker engine answers, and starting one needs root: start Docker and run again"
            )
        data = self.folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        self.exec_root.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        self.process.start(
            [
                "dockerd", "--data-root", str(data), "--exec-root", str(self.exec_root),
                "--pidfile", str(self.folder / "dockerd.pid"), "--host", f"unix://{self.socket}",
                # No bridge, no NAT, no firewall rules: containers share the host's network.
                "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-forward=false",
                "--ip-masq=false",
            ]
        )  # fmt: skip
        notes.append(f"started Debian's dockerd as a process of the stack (data in {data}, host networking)")


def _answers(client: str, host: str) -> bool:
    try:
        result = subprocess.run(
            [client, "info", "--format", "{{.ServerVersion}}"], env={**os.environ, "DOCKER_HOST": host},
            capture_output=True, text=True, timeout=15, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0 and bool(result.stdout.strip())
