"""The lines the README shows for deploying the container, run as far as this machine allows:
`docker compose up -d transformer` (the compose file's transformer service, pointed at the local stack
because the compose file's Kafka and registry images cannot be pulled here) and the plain `docker run`
line against the bus (SASL_SSL, MSK IAM, pinned schema ids), which cannot reach the bus from here:
it must start, stay alive waiting for the registry, be not ready with the reason, and stop cleanly."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ruamel.yaml import YAML

from eventbus_dev.stack.docker_engine import Engine
from eventbus_dev.stack.images import ImageBuild
from tests.integration.container.test_transformer_container import (
    GRACE_S,
    _assert_curated_equal_offline,
)
from tests.integration.transformer.support import (
    Scenario,
    create_topics,
    produce_records,
    unique,
    wait_caught_up,
    wait_until,
)
from tests.support.containers import readable_copy
from tests.support.sasl_broker import free_port
from tests.support.settings_env import unknown_settings
from tests.support.stack import REPO, StackEndpoints

pytestmark = pytest.mark.stack


# --- docker compose up -d transformer ------------------------------------------------------------------


class ComposeProject:
    """The compose file's transformer service, only what cannot work here changed: the local image, the
    host's network (our engine has no bridge), the local stack's addresses, the test's mappings."""

    def __init__(self, engine: Engine, folder: Path) -> None:
        self.engine, self.folder, self.name = engine, folder, unique("eventbus-compose-")
        self.file = folder / "docker-compose.yml"

    def write(self, image: str, mappings: Path, environment: dict[str, str]) -> dict[str, Any]:
        compose = YAML(typ="safe").load((REPO / "docker-compose.yml").read_text())
        service = compose["services"]["transformer"]
        for unusable in ("build", "depends_on", "ports"):  # no registry images here; host network
            service.pop(unusable)
        service["image"] = image
        service["network_mode"] = "host"
        service["environment"] = {**service["environment"], **environment}
        service["volumes"] = [
            f"{readable_copy(mappings)}:/app/mappings:ro" if volume.startswith("./mappings:") else volume
            for volume in service["volumes"]
        ]
        document = {"services": {"transformer": service}, "volumes": compose["volumes"]}
        with self.file.open("w") as stream:
            YAML().dump(document, stream)
        return dict(service)

    def compose(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["docker-compose", "-p", self.name, "-f", str(self.file), *args], env=self.engine.env(),
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        assert result.returncode == 0, f"docker-compose {' '.join(args)}: {result.stderr[-2000:]}"
        return result

    def container(self) -> str:
        return self.compose("ps", "-q", "transformer").stdout.strip()


@pytest.fixture
def compose_project(docker_engine: Engine, tmp_path: Path) -> Iterator[ComposeProject]:
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is not installed; `make setup` installs Debian's docker-compose package")
    project = ComposeProject(docker_engine, tmp_path)
    yield project
    if project.file.exists():
        subprocess.run(["docker-compose", "-p", project.name, "-f", str(project.file), "down", "--volumes"],
                       env=docker_engine.env(), capture_output=True, timeout=120, check=False)  # fmt: skip


def test_docker_compose_up_transformer_publishes_and_stops_within_its_grace_period(
    docker_engine: Engine,
    transformer_image: ImageBuild,
    stack: StackEndpoints,
    compose_project: ComposeProject,
    tmp_path: Path,
) -> None:
    scenario = Scenario(tmp_path)
    create_topics(stack.bootstrap_servers, {scenario.staging_topic: 3, scenario.status_topic: 3,
                                            scenario.closed_topic: 3, scenario.dlq_topic: 1})  # fmt: skip
    mappings = scenario.write_mappings()
    records = scenario.records(2000, seed=3)
    produce_records(stack.bootstrap_servers, scenario.staging_topic, [(r.key, r.value) for r in records])
    port = free_port()
    local = {
        "EVENTBUS_KAFKA__BOOTSTRAP_SERVERS": stack.bootstrap_servers,
        "EVENTBUS_REGISTRY__URL": stack.registry_url,
        "EVENTBUS_GROUP_ID": scenario.group,
        "EVENTBUS_HTTP__HOST": "127.0.0.1",
        "EVENTBUS_HTTP__PORT": str(port),
    }
    service = compose_project.write(transformer_image.tag, mappings, local)
    assert service["read_only"] is True and service["cap_drop"] == ["ALL"]

    compose_project.compose("up", "-d", "transformer")
    container = compose_project.container()

    def health() -> str:
        found = docker_engine.docker(
            "inspect", "--format", "{{.State.Status}} {{.State.Health.Status}}", container
        )
        state, status = found.stdout.split()
        assert state == "running", docker_engine.docker("logs", container, check=False).stderr[-3000:]
        return status

    # The compose file's own health check (10 s interval): "healthy" after its first probe.
    wait_until(lambda: health() == "healthy", 60, "the compose service to be healthy")
    assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
    wait_caught_up(stack.bootstrap_servers, scenario.group, scenario.staging_topic, timeout=90)

    compose_project.compose("stop", "transformer", timeout=60)  # stop_grace_period: 10s
    state = docker_engine.docker(
        "inspect", "--format", "{{.State.ExitCode}} {{.State.FinishedAt}}", container
    )
    assert state.stdout.split()[0] == "0", "the service stopped cleanly within the grace period"
    _assert_curated_equal_offline(stack.bootstrap_servers, stack.registry_url, scenario, mappings, records)


# --- the plain `docker run` line against the bus ---------------------------------------------------------


def readme_docker_run_line() -> list[str]:
    """The README's `docker run` command, its continuation lines joined, as arguments."""
    readme = (REPO / "README.md").read_text()
    match = re.search(r"^docker run -d .*?(?<!\\)\n", readme, re.MULTILINE | re.DOTALL)
    assert match, "the README shows no `docker run -d` line"
    return shlex.split(match.group(0).replace("\\\n", " ").replace("$PWD", str(REPO)))


def test_the_readme_docker_run_line_for_the_bus_starts_waits_for_the_registry_and_stops(
    docker_engine: Engine, transformer_image: ImageBuild, stack: StackEndpoints, tmp_path: Path
) -> None:
    words = readme_docker_run_line()
    assert words[:3] == ["docker", "run", "-d"] and words[-1] == "eventbus-transformer:dev"
    environment = dict(words[i + 1].split("=", 1) for i, word in enumerate(words) if word == "-e")
    assert not unknown_settings(list(environment)), "the README names a setting the service does not know"
    assert environment["EVENTBUS_KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL"
    assert environment["EVENTBUS_KAFKA__SASL__MECHANISM"] == "OAUTHBEARER"
    assert environment["EVENTBUS_REGISTRY__MODE"] == "pinned"

    # Pinned ids need the mapping folder's lock file: made as a team would, against a registry that
    # holds the schemas (the local one), then the folder is mounted where the README mounts it.
    mounted = [words[i + 1] for i, word in enumerate(words) if word == "-v"]
    (mapping_mount,) = [m for m in mounted if m.endswith(":/app/mappings:ro")]
    folder = tmp_path / "claims"
    shutil.copytree(mapping_mount.split(":")[0], folder)
    for command in ("register", "pin"):
        cli = str(Path(sys.executable).with_name("eventbus"))  # the virtualenv's, as a team runs it
        result = subprocess.run(
            [cli, "schema", command, str(folder), "--registry", stack.registry_url],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, f"schema {command}: {result.stdout}{result.stderr}"
    assert (folder / "schemas.lock.yaml").exists()

    # The line as shown, but: the test's name and image, the host's network instead of -p (our engine
    # has no bridge) on a free port, the folder with its lock file.
    port, name = free_port(), unique("eventbus-readme-")
    arguments: list[str] = []
    skip = 0
    for index, word in enumerate(words[3:-1], start=3):
        if skip:
            skip -= 1
            continue
        if word in ("--name", "-p"):
            skip = 1
            continue
        arguments.append(f"{readable_copy(folder)}:/app/mappings:ro" if words[index - 1] == "-v" else word)
    docker_engine.docker(
        "run", "-d", "--name", name, "--network", "host", *arguments,
        "-e", f"EVENTBUS_HTTP__PORT={port}", "-e", "EVENTBUS_HTTP__HOST=127.0.0.1",
        "--health-interval", "1s", "--health-start-period", "1s", transformer_image.tag,
    )  # fmt: skip
    try:

        def waiting_for_the_registry() -> bool:
            state = docker_engine.docker("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
            assert state == "true", docker_engine.docker("logs", name, check=False).stderr[-3000:]
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
            except httpx.HTTPError:
                return False
            return ready.status_code == 503 and "schema registry" in ready.text

        wait_until(waiting_for_the_registry, 60, "the service to wait for the bus's registry")

        def health() -> str:
            return docker_engine.docker(
                "inspect", "--format", "{{.State.Health.Status}}", name
            ).stdout.strip()

        wait_until(lambda: health() == "healthy", 30, "Docker health: alive while waiting")
        started = time.monotonic()
        docker_engine.docker("stop", "--time", str(GRACE_S), name, timeout=GRACE_S + 30)
        took = time.monotonic() - started
        code = docker_engine.docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        assert code == "0" and took < GRACE_S, f"exit {code} after {took:.1f}s"
        logs = docker_engine.docker("logs", name, check=False).stderr
        assert "schema registry not answering; waiting" in logs, logs[-3000:]
    finally:
        docker_engine.docker("rm", "--force", "--volumes", name, check=False)
