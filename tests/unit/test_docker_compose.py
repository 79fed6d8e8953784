"""docker-compose.yml uses official images that no registry here serves, so it is validated instead: by
Compose itself (`docker-compose config`), against the local stack it mirrors (same services, same host
ports) and against the transformer's image (same health check, user, volumes; known settings only).
Its transformer service is run for real by tests/integration/container."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from eventbus.service.settings import TransformerSettings
from eventbus_dev.stack.images import TRANSFORMER_IMAGE
from eventbus_dev.stack.settings import StackSettings
from tests.support.dockerfile import declared_volumes, healthcheck_command
from tests.support.settings_env import unknown_settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"


@functools.cache  # Compose takes seconds to start
def _resolved_config() -> dict:
    if not shutil.which("docker-compose"):
        pytest.fail("docker-compose is not installed; `make setup` installs Debian's docker-compose package")
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE_FILE), "config"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"docker-compose rejected the file:\n{result.stderr}"
    return YAML(typ="safe").load(result.stdout)


def test_compose_file_is_valid_and_has_the_stack_topology() -> None:
    config = _resolved_config()
    assert set(config["services"]) == {"postgres", "kafka", "connect", "registry", "topics", "transformer"}


def test_topics_are_provisioned_before_the_transformer_not_auto_created() -> None:
    services = _resolved_config()["services"]
    assert services["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert services["topics"]["entrypoint"][:3] == ["eventbus", "topics", "apply"]
    assert services["transformer"]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    # Same image, same group: the dead-letter topic it creates is the one the transformer writes.
    assert services["topics"]["image"] == services["transformer"]["image"]
    assert (
        services["topics"]["environment"]["EVENTBUS_GROUP_ID"]
        == services["transformer"]["environment"]["EVENTBUS_GROUP_ID"]
    )


def test_host_ports_match_the_local_stack_defaults() -> None:
    services = _resolved_config()["services"]
    # The defaults, not the environment: compose publishes fixed ports.
    settings = StackSettings.model_construct()

    # Compose v1 prints short syntax (`ip:host:container/tcp`), v2 long syntax; read both.
    def host_side(port: str | dict) -> tuple[str, int]:
        if isinstance(port, dict):
            return port.get("host_ip", ""), int(port["published"])
        ip, host, _container = port.split(":")
        return ip, int(host)

    published = {name: {host_side(p) for p in service.get("ports", [])} for name, service in services.items()}
    assert ("127.0.0.1", settings.postgres_port) in published["postgres"]
    assert ("127.0.0.1", settings.kafka_port) in published["kafka"]
    assert ("127.0.0.1", settings.connect_port) in published["connect"]
    assert ("127.0.0.1", settings.registry_port) in published["registry"]
    every_ip = {ip for ports in published.values() for ip, _port in ports}
    assert every_ip == {"127.0.0.1"}, "published ports must stay on loopback"


def test_connect_uses_the_staging_format_the_transformer_decodes() -> None:
    environment = _resolved_config()["services"]["connect"]["environment"]
    assert environment["VALUE_CONVERTER"] == "org.apache.kafka.connect.json.JsonConverter"
    assert environment["CONNECT_VALUE_CONVERTER_SCHEMAS_ENABLE"] == "true"
    assert environment["CONNECT_EXACTLY_ONCE_SOURCE_SUPPORT"] == "enabled"


def test_transformer_is_built_from_its_dockerfile() -> None:
    build = _resolved_config()["services"]["transformer"]["build"]
    assert Path(build["context"], build["dockerfile"]).resolve() == REPO / "transformer" / "Dockerfile"
    assert (REPO / "transformer" / "Dockerfile").exists()


def test_transformer_service_runs_the_image_as_in_production() -> None:
    service = _resolved_config()["services"]["transformer"]
    assert service["image"] == TRANSFORMER_IMAGE  # the tag `eventbus-dev image build` gives
    assert service["healthcheck"]["test"] == ["CMD", *healthcheck_command()]
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert any("no-new-privileges" in option for option in service["security_opt"])
    mounted = {str(volume["target"] if isinstance(volume, dict) else volume.split(":")[1])
               for volume in service["volumes"]} | set(service["tmpfs"])  # fmt: skip
    assert declared_volumes() <= mounted, "every path the service writes is a volume or a tmpfs"


def test_transformer_service_sets_only_known_settings_within_the_grace_period() -> None:
    service = _resolved_config()["services"]["transformer"]
    environment = service["environment"]
    assert not unknown_settings(list(environment)), "a misspelt EVENTBUS_ variable is silently ignored"
    TransformerSettings.model_validate(
        {"shutdown_timeout_s": environment["EVENTBUS_SHUTDOWN_TIMEOUT_S"],
         "http": {"port": environment["EVENTBUS_HTTP__PORT"]}}
    )  # fmt: skip
    grace = service["stop_grace_period"]
    grace_s = float(grace.removesuffix("s")) if isinstance(grace, str) else float(grace)
    assert float(environment["EVENTBUS_SHUTDOWN_TIMEOUT_S"]) < grace_s, "the stop budget fits Docker's grace"
    published = service["ports"][0]
    container_port = (
        published["target"] if isinstance(published, dict) else published.split(":")[-1].split("/")[0]
    )
    assert int(container_port) == int(environment["EVENTBUS_HTTP__PORT"])
