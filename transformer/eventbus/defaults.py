"""Where the services are when no setting says: the loopback ports of the development stack.

Every product setting that names a service (Kafka, Kafka Connect, the schema registry) defaults to
these, so the CLI works out of the box against the local stack (`eventbus-dev stack up`, or
docker-compose.yml, which publishes the same ports). Anywhere else the environment
(`EVENTBUS_KAFKA__BOOTSTRAP_SERVERS`, `EVENTBUS_CONNECT_URL`, `EVENTBUS_REGISTRY__URL`, ...) or the CLI
options say where they are. The development stack takes its default ports from here, so the two
cannot drift; the product itself never imports the development tools.
"""

from __future__ import annotations

from typing import Final

LOCAL_HOST: Final = "127.0.0.1"
KAFKA_PORT: Final = 19092
CONNECT_PORT: Final = 18083
REGISTRY_PORT: Final = 18081

BOOTSTRAP_SERVERS: Final = f"{LOCAL_HOST}:{KAFKA_PORT}"
CONNECT_URL: Final = f"http://{LOCAL_HOST}:{CONNECT_PORT}"
# Apicurio's Confluent-compatible API: the URL confluent-kafka's SchemaRegistryClient takes.
REGISTRY_URL: Final = f"http://{LOCAL_HOST}:{REGISTRY_PORT}/apis/ccompat/v7"

# The bus's compatibility rule for curated schemas, and the file that pins their registry ids.
SCHEMA_COMPATIBILITY: Final = "BACKWARD"
SCHEMA_LOCK_FILE: Final = "schemas.lock.yaml"
