"""Which stack the integration tests run against.

Default (and CI): the local processes of `eventbus-dev stack up`. Where a Docker engine exists and
EVENTBUS_TEST_STACK=docker, the same tests run on the containers of docker-compose.yml through
testcontainers. Either way the tests get the same `StackEndpoints`.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class StackEndpoints:
    bootstrap_servers: str
    connect_url: str
    registry_url: str
    postgres_host: str
    postgres_port: int
    postgres_user: str
    postgres_password: str
    # How Connect (possibly inside a container) reaches PostgreSQL.
    postgres_host_for_connect: str
    postgres_port_for_connect: int

    def postgres_dsn(self, database: str = "postgres") -> str:
        return (
            f"postgresql+psycopg://{self.postgres_user}:{self.postgres_password}"
            f"@{self.postgres_host}:{self.postgres_port}/{database}"
        )

    def libpq_dsn(self, database: str = "postgres") -> str:
        return (
            f"host={self.postgres_host} port={self.postgres_port} dbname={database} "
            f"user={self.postgres_user} password={self.postgres_password}"
        )


def docker_engine_available() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


def start_local_stack() -> StackEndpoints:
    from eventbus_dev.stack.launcher import LocalStack
    from eventbus_dev.stack.settings import StackSettings

    settings = StackSettings()
    LocalStack(settings).up()  # a no-op for services already running
    return StackEndpoints(
        bootstrap_servers=settings.bootstrap_servers,
        connect_url=settings.connect_url,
        registry_url=settings.registry_url,
        postgres_host=settings.host,
        postgres_port=settings.postgres_port,
        postgres_user=settings.postgres_user,
        postgres_password=settings.postgres_password.get_secret_value(),
        postgres_host_for_connect=settings.host,
        postgres_port_for_connect=settings.postgres_port,
    )


def start_compose_stack():  # pragma: no cover - needs a Docker engine, which CI here does not have
    """Start docker-compose.yml's infrastructure services; yields endpoints, then tears down.

    The compose file publishes the same loopback ports as the local stack's defaults.
    """
    import time

    import httpx
    from testcontainers.compose import DockerCompose

    compose = DockerCompose(str(REPO), compose_file_name="docker-compose.yml",
                            services=["postgres", "kafka", "connect", "registry"], wait=True)  # fmt: skip
    compose.start()
    endpoints = StackEndpoints(
        bootstrap_servers="127.0.0.1:19092",
        connect_url="http://127.0.0.1:18083",
        registry_url="http://127.0.0.1:18081/apis/ccompat/v7",
        postgres_host="127.0.0.1",
        postgres_port=15432,
        postgres_user="postgres",
        postgres_password="postgres",
        # Inside the compose network, Connect reaches PostgreSQL by its service name.
        postgres_host_for_connect="postgres",
        postgres_port_for_connect=5432,
    )
    try:
        # Connect and the registry have no health checks in the compose file: poll their APIs.
        deadline = time.monotonic() + 180
        for url in (f"{endpoints.connect_url}/connector-plugins", f"{endpoints.registry_url}/subjects"):
            while True:
                try:
                    if httpx.get(url, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} did not answer within 180 s of `docker compose up`")
                time.sleep(1)
        yield endpoints
    finally:
        compose.stop()


def drop_database(stack: StackEndpoints, name: str, timeout: float = 60) -> None:
    """Drop a test database and its replication slots, once the connector has let go of them."""
    import time

    import psycopg

    with psycopg.connect(stack.libpq_dsn(), autocommit=True) as admin:
        # Deleting a connector is asynchronous: wait until its task has released the slot.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            active = admin.execute(
                "select count(*) from pg_replication_slots where database = %s and active", (name,)
            ).fetchone()
            if active == (0,):
                break
            time.sleep(0.5)
        admin.execute(
            "select pg_drop_replication_slot(slot_name) from pg_replication_slots where database = %s",
            (name,),
        )
        admin.execute(f'drop database "{name}" with (force)')
