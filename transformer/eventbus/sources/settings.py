"""Where Kafka Connect, Kafka, the definitions and the mappings are.

Defaults point at the local development stack (`eventbus.defaults`); the environment (`EVENTBUS_CONNECT_URL`,
`EVENTBUS_KAFKA__BOOTSTRAP_SERVERS`, ...) and then the CLI options override them.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from eventbus import defaults


class KafkaSettings(BaseModel):
    bootstrap_servers: str = defaults.BOOTSTRAP_SERVERS


class SourceSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="EVENTBUS_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    connect_url: str = Field(defaults.CONNECT_URL, description="Kafka Connect REST API")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    connectors_dir: Path = Field(Path("connectors"), description="where connectors/NAME.yaml live")
    mappings_dir: Path = Field(Path("mappings"), description="read to find tables whose before.* is used")
    stale_after_s: float = Field(
        300.0,
        gt=0,
        description="`source status` fails (exit 1) for a source with no change and no heartbeat for "
        "this long: heartbeats come every heartbeat.interval (10 s by default) while the tables are idle",
    )

    def with_overrides(self, **values: object) -> SourceSettings:
        """A copy with the CLI options that were given (None means "not given")."""
        kafka = values.pop("bootstrap_servers", None)
        update = {key: value for key, value in values.items() if value is not None}
        if kafka is not None:
            update["kafka"] = KafkaSettings(bootstrap_servers=str(kafka))
        return self.model_copy(update=update)
