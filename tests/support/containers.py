"""The transformer as a container on the Docker engine of the stack (tests/integration/container).

Every container runs as the image says (uid 10001) and hardened as in production: read-only root
filesystem, no capabilities, no privilege escalation; host networking (the engine has no bridge).
Fallbacks taken to get an engine and a base image are collected in `FALLBACKS` and printed in the
test session's summary (tests/conftest.py), never skipped silently.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import httpx

from eventbus_dev.stack.docker_engine import DockerEngine, Engine
from eventbus_dev.stack.images import ImageBuild, build_transformer_image
from eventbus_dev.stack.settings import StackSettings
from tests.integration.transformer.support import unique, wait_until

FALLBACKS: list[str] = []
IMAGE = "eventbus-transformer:test"
_build: Future[tuple[Engine, ImageBuild]] | None = None


def start_image_build() -> None:
    """Get an engine and build the image in the background (installing the engine and making a base
    image take minutes on a fresh machine); the container tests wait for it. Started once."""
    global _build
    if _build is None:
        _build = ThreadPoolExecutor(max_workers=1, thread_name_prefix="image-build").submit(_engine_and_image)


def engine_and_image() -> tuple[Engine, ImageBuild]:
    start_image_build()
    assert _build is not None
    return _build.result()


def _engine_and_image() -> tuple[Engine, ImageBuild]:
    settings = StackSettings()
    engine = DockerEngine(settings).ensure()
    FALLBACKS.extend(engine.notes)
    repo = Path(__file__).resolve().parents[2]
    built = build_transformer_image(engine, repo, settings.cache, lambda _: None, tag=IMAGE)
    FALLBACKS.extend(note for note in built.notes if note not in FALLBACKS)
    FALLBACKS.append(
        f"image {built.tag}: {built.size_mb} MB on {built.base}, built in {built.build_seconds:.0f}s"
    )
    return engine, built


HARDENED = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
# Docker's health check as the image defines it, polled faster than its 10 s so tests are quick.
FAST_HEALTH = ["--health-interval", "1s", "--health-timeout", "3s", "--health-retries", "2",
               "--health-start-period", "1s"]  # fmt: skip


class TransformerContainer:
    """`docker run` of the transformer image with a mappings folder mounted read-only."""

    live: ClassVar[list[TransformerContainer]] = []

    def __init__(
        self, engine: Engine, image: str, mappings: Path, env: dict[str, str], http_port: int
    ) -> None:
        self.engine, self.image, self.mappings = engine, image, mappings
        self.name = unique("eventbus-t")
        self.env = {**env, "EVENTBUS_HTTP__PORT": str(http_port), "EVENTBUS_HTTP__HOST": "127.0.0.1"}
        self.http_port = http_port
        self.mounted: Path | None = None  # the readable copy of `mappings`, made at start

    def start(self, *extra: str) -> TransformerContainer:
        env_args = [arg for name, value in self.env.items() for arg in ("-e", f"{name}={value}")]
        self.mounted = readable_copy(self.mappings)
        self.engine.docker(
            "run", "--detach", "--name", self.name, "--network", "host", *HARDENED, *FAST_HEALTH,
            "--volume", f"{self.mounted}:/app/mappings:ro", *env_args, *extra, self.image,
        )  # fmt: skip
        TransformerContainer.live.append(self)
        return self

    @classmethod
    def remove_leftovers(cls) -> None:
        for container in cls.live:
            container.engine.docker("rm", "--force", "--volumes", container.name, check=False)
            if container.mounted is not None:
                shutil.rmtree(container.mounted, ignore_errors=True)
        cls.live.clear()

    # --- what Docker says ------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        found = self.engine.docker("inspect", "--format", "{{json .State}}", self.name)
        return dict(json.loads(found.stdout))

    def running(self) -> bool:
        return bool(self.state()["Running"])

    def health(self) -> str:
        health = self.state().get("Health") or {}
        return str(health.get("Status", "none"))

    def wait_health(self, status: str, timeout: float) -> None:
        wait_until(
            lambda: self._check_alive() and self.health() == status, timeout, f"Docker health {status}"
        )

    def exec(self, *command: str) -> str:
        return self.engine.docker("exec", self.name, *command).stdout.strip()

    # --- what the service says -------------------------------------------------------------------

    def log_text(self) -> str:
        result = self.engine.docker("logs", self.name, check=False)
        return (result.stdout or "") + (result.stderr or "")

    def logs(self) -> list[dict[str, Any]]:
        entries = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                try:
                    entries.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return entries

    def messages(self) -> list[str]:
        return [str(entry.get("msg")) for entry in self.logs()]

    def _check_alive(self) -> bool:
        if not self.running():
            raise AssertionError(
                f"container {self.name} exited {self.state()['ExitCode']}:\n{self.log_text()}"
            )
        return True

    def wait_ready(self, timeout: float = 90) -> TransformerContainer:
        def ready() -> bool:
            self._check_alive()
            try:
                return httpx.get(f"http://127.0.0.1:{self.http_port}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout, f"container {self.name} to be ready")
        return self

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5).text

    def final_accounting(self) -> dict[str, Any]:
        stopped = [e for e in self.logs() if e.get("msg") == "transformer stopped"]
        assert stopped, f"no final log line from {self.name}:\n{self.log_text()[-3000:]}"
        return dict(stopped[-1]["accounting"])

    # --- ending it -------------------------------------------------------------------------------

    def stop(self, grace_s: int = 10) -> tuple[int, float]:
        """`docker stop` (SIGTERM, SIGKILL after the grace period): (exit code, seconds it took)."""
        started = time.monotonic()
        self.engine.docker("stop", "--time", str(grace_s), self.name, timeout=grace_s + 30)
        took = time.monotonic() - started
        state = self.state()
        return int(state["ExitCode"]), took

    def kill(self) -> None:
        self.engine.docker("kill", self.name)


def readable_copy(folder: Path) -> Path:
    """A copy of `folder` that the image's user (uid 10001) can read: pytest's temporary folders are
    private to root (0700), as a deployment's secrets folder would be."""
    copy = Path(tempfile.mkdtemp(prefix="eventbus-mappings-"))
    shutil.copytree(folder, copy, dirs_exist_ok=True)
    for path in [copy, *copy.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return copy


def image_facts(engine: Engine, image: str) -> dict[str, Any]:
    found = engine.docker("image", "inspect", "--format", "{{json .}}", image)
    return dict(json.loads(found.stdout))


def docker_run_once(engine: Engine, *args: str) -> subprocess.CompletedProcess[str]:
    """`docker run --rm ARGS` (ARGS name the image), hardened like the others; its output returned."""
    return engine.docker("run", "--rm", "--network", "host", *HARDENED, *args, check=False)
