"""Settings of the local stack: ports, folders, memory. Every field can be set from the environment.

Ports default to the usual ones plus 10000 so a developer's own PostgreSQL or Kafka on the standard
ports keeps working next to ours.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from eventbus import defaults


def _repo_root() -> Path:
    # devtools/eventbus_dev/stack/settings.py -> repository root, when run from a checkout.
    return Path(__file__).resolve().parents[3]


class StackSettings(BaseSettings):
    """Where the local stack keeps its files and which loopback ports it listens on."""

    model_config = SettingsConfigDict(env_prefix="EVENTBUS_STACK_", frozen=True, extra="ignore")

    host: str = Field(defaults.LOCAL_HOST, description="Loopback address every service binds to.")
    postgres_port: int = Field(15432, description="PostgreSQL.")
    kafka_port: int = Field(defaults.KAFKA_PORT, description="Kafka broker (PLAINTEXT listener).")
    kafka_controller_port: int = Field(19093, description="KRaft controller listener.")
    connect_port: int = Field(defaults.CONNECT_PORT, description="Kafka Connect REST API.")
    registry_port: int = Field(
        defaults.REGISTRY_PORT, description="Apicurio Registry (Confluent API under /apis/ccompat/v7)."
    )
    registry_management_port: int = Field(19000, description="Apicurio's health and metrics endpoints.")

    repo_dir: Path = Field(default_factory=_repo_root)
    state_dir: Path | None = Field(None, description="Data, logs, pid files. Default: <repo>/.stack")
    cache_dir: Path | None = Field(None, description="Downloaded artifacts. Default: <repo>/.cache")

    postgres_user: str = "postgres"
    postgres_password: SecretStr = SecretStr("postgres")
    registry_database: str = "schema_registry"

    kafka_heap: str = "-Xms256m -Xmx768m"
    connect_heap: str = "-Xms256m -Xmx768m"
    registry_heap: str = "-Xms128m -Xmx512m"

    start_timeout_s: float = Field(180.0, description="How long `up` waits for each service to be ready.")

    @property
    def state(self) -> Path:
        return (self.state_dir or self.repo_dir / ".stack").resolve()

    @property
    def cache(self) -> Path:
        return (self.cache_dir or self.repo_dir / ".cache").resolve()

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    @property
    def connect_url(self) -> str:
        return f"http://{self.host}:{self.connect_port}"

    @property
    def registry_url(self) -> str:
        """The Confluent-compatible API, the URL confluent-kafka's SchemaRegistryClient takes."""
        return f"http://{self.host}:{self.registry_port}/apis/ccompat/v7"

    def postgres_dsn(self, database: str = "postgres", *, hide_password: bool = False) -> str:
        """SQLAlchemy URL for the stack's PostgreSQL (psycopg 3 driver)."""
        password = "***" if hide_password else self.postgres_password.get_secret_value()
        return f"postgresql+psycopg://{self.postgres_user}:{password}@{self.host}:{self.postgres_port}/{database}"
