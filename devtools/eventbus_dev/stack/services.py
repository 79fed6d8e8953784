"""The four services of the local stack: how each is configured, started, probed and stopped.

Configuration files are generated into the state folder from the settings on every start, so a
changed port or heap takes effect on the next `up`; data (PostgreSQL cluster, Kafka log) is kept.
"""

from __future__ import annotations

import base64
import os
import pwd
import signal
import subprocess
import time
import uuid
from abc import ABC, abstractmethod
from pathlib import Path

import httpx

from eventbus_dev.stack.artifacts import Artifacts
from eventbus_dev.stack.errors import StackError
from eventbus_dev.stack.process import ManagedProcess, port_is_open
from eventbus_dev.stack.settings import StackSettings
from eventbus_dev.stack.transactions import (
    OPEN_MINUTES_DEFAULT,
    HangingTransaction,
    parse_find_hanging,
    run_tool,
)

LOG4J2_PROPERTIES = """\
# Written by `eventbus-dev stack up`: the JVM services log to stdout, which the stack sends to a file.
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c{1})%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.zookeeper.name = org.apache.zookeeper
logger.zookeeper.level = WARN
logger.reflections.name = org.reflections
logger.reflections.level = ERROR
"""

_PROVIDERS = "org.apache.kafka.common.config.provider"  # Kafka's built-in config providers


def new_kraft_cluster_id() -> str:
    """A random KRaft cluster id: 16 bytes, URL-safe base64. One that starts with '-' is drawn again,
    as Kafka does, since command-line parsers take such a value for an option."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _write_properties(path: Path, values: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Written by `eventbus-dev stack up` from the stack settings; edits are overwritten."]
    lines += [f"{key}={value}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")


class Service(ABC):
    """One process of the stack."""

    name: str
    stop_signal: int = signal.SIGTERM

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.home = settings.state / self.name
        self.process = ManagedProcess(
            name=self.name,
            pid_file=settings.state / "run" / f"{self.name}.pid",
            log_file=settings.state / "logs" / f"{self.name}.log",
            marker=str(self.home),
        )

    @property
    @abstractmethod
    def port(self) -> int:
        """The port clients use."""

    @property
    def ports(self) -> list[int]:
        return [self.port]

    @abstractmethod
    def start(self, artifacts: Artifacts) -> None:
        """Write the configuration and start the process (not waiting for readiness)."""

    @abstractmethod
    def is_ready(self) -> bool:
        """Whether the service answers its clients, not merely whether its port is open."""

    @property
    def endpoint(self) -> str:
        return f"{self.settings.host}:{self.port}"


class PostgresService(Service):
    """PostgreSQL with logical decoding, its cluster in the state folder, password auth on loopback."""

    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: does not wait for clients to disconnect

    @property
    def port(self) -> int:
        return self.settings.postgres_port

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def _run_as(self) -> str | None:
        # PostgreSQL refuses to run as root; as root we run it as the `postgres` system user.
        return "postgres" if os.geteuid() == 0 else None

    def _hand_over(self, path: Path) -> None:
        user = self._run_as()
        if user is None:
            return
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        # The service user must be able to traverse to its data folder (a clone may live in a 0700 dir).
        for parent in path.parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                os.chmod(parent, mode | 0o001)

    def start(self, artifacts: Artifacts) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        socket_dir = self.home / "run"
        socket_dir.mkdir(exist_ok=True)
        self._hand_over(self.home)
        self._hand_over(socket_dir)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(artifacts)
        command = [
            str(artifacts.postgres_bin / "postgres"),
            "-D", str(self.data_dir),
            "-c", f"listen_addresses={self.settings.host}",
            "-c", f"port={self.port}",
            "-c", f"unix_socket_directories={socket_dir}",
            "-c", "wal_level=logical",
            "-c", "max_replication_slots=20",
            "-c", "max_wal_senders=20",
            "-c", "max_connections=200",
            "-c", "shared_buffers=128MB",
            "-c", "wal_sender_timeout=60s",
            "-c", "log_min_messages=warning",
        ]  # fmt: skip
        self.process.start(command, user=self._run_as())

    def _initdb(self, artifacts: Artifacts) -> None:
        pwfile = self.home / ".initdb-password"
        pwfile.write_text(self.settings.postgres_password.get_secret_value() + "\n")
        self._hand_over(pwfile)
        try:
            result = subprocess.run(
                [
                    str(artifacts.postgres_bin / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.settings.postgres_user,
                    f"--pwfile={pwfile}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=peer",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ],
                capture_output=True,
                text=True,
                user=self._run_as(),
                group=self._run_as(),
                extra_groups=[] if self._run_as() else None,
                check=False,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise StackError(f"initdb failed for {self.data_dir}:\n{result.stdout}{result.stderr}")

    def is_ready(self) -> bool:
        if not port_is_open(self.settings.host, self.port):
            return False
        import psycopg

        try:
            with psycopg.connect(self._libpq_dsn(), connect_timeout=2) as conn:
                conn.execute("select 1")
            return True
        except psycopg.Error:
            return False

    def _libpq_dsn(self, database: str = "postgres") -> str:
        s = self.settings
        return (
            f"host={s.host} port={self.port} dbname={database} user={s.postgres_user} "
            f"password={s.postgres_password.get_secret_value()}"
        )

    def ensure_database(self, name: str) -> None:
        """Create a database if it does not exist (e.g. the registry's storage).

        Asked again for a while when the server drops the connection: right after a restart (the
        chaos run restarts PostgreSQL mid-traffic) a server that just answered `is_ready` may still
        close a session ("server closed the connection unexpectedly"), which stopped the run."""
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self._libpq_dsn(), autocommit=True, connect_timeout=5) as conn:
                    exists = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
                    if not exists:
                        conn.execute(f'create database "{name}"')
                return
            except psycopg.errors.DuplicateDatabase:
                return  # created by the attempt whose answer was lost
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)  # back-off while the server settles, not synchronisation


class _JvmService(Service, ABC):
    def _java(self, java: Path, heap: str, *args: str) -> list[str]:
        log4j = self.settings.state / "log4j2.properties"
        log4j.parent.mkdir(parents=True, exist_ok=True)
        log4j.write_text(LOG4J2_PROPERTIES)
        return [
            str(java),
            *heap.split(),
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Deventbus.stack.home={self.home}",
            *args,
        ]


class KafkaService(_JvmService):
    """A single combined broker + controller in KRaft mode."""

    name = "kafka"

    @property
    def port(self) -> int:
        return self.settings.kafka_port

    @property
    def ports(self) -> list[int]:
        return [self.settings.kafka_port, self.settings.kafka_controller_port]

    def start(self, artifacts: Artifacts) -> None:
        s = self.settings
        config = self.home / "server.properties"
        data = self.home / "data"
        _write_properties(
            config,
            {
                "process.roles": "broker,controller",
                "node.id": 1,
                "controller.quorum.voters": f"1@{s.host}:{s.kafka_controller_port}",
                "listeners": f"PLAINTEXT://{s.host}:{s.kafka_port},CONTROLLER://{s.host}:{s.kafka_controller_port}",
                "advertised.listeners": f"PLAINTEXT://{s.host}:{s.kafka_port}",
                "controller.listener.names": "CONTROLLER",
                "inter.broker.listener.name": "PLAINTEXT",
                "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                "log.dirs": data,
                "num.partitions": 1,
                # A single node: every internal topic has one replica.
                "offsets.topic.replication.factor": 1,
                "transaction.state.log.replication.factor": 1,
                "transaction.state.log.min.isr": 1,
                "share.coordinator.state.topic.replication.factor": 1,
                "share.coordinator.state.topic.min.isr": 1,
                "default.replication.factor": 1,
                "min.insync.replicas": 1,
                "group.initial.rebalance.delay.ms": 0,
                # As on the bus: topics are provisioned (`eventbus source register` for staging,
                # `eventbus topics apply` for curated and dead-letter topics), never created by a
                # first produce with the broker's defaults. Connect creates its own internal topics.
                "auto.create.topics.enable": "false",
                # Transactions past their timeout are aborted by a sweep, every 10 s by default: a
                # Connect worker waiting on a killed worker's open transaction waits for it too.
                "transaction.abort.timed.out.transaction.cleanup.interval.ms": 1000,
                "log.retention.hours": 168,
                "num.network.threads": 2,
                "num.io.threads": 4,
            },
        )
        classpath = f"{artifacts.kafka_libs}/*"
        if not (data / "meta.properties").exists():
            cluster_id_file = self.home / "cluster.id"
            if not cluster_id_file.exists() or cluster_id_file.read_text().strip().startswith("-"):
                cluster_id_file.write_text(new_kraft_cluster_id())
            cluster_id = cluster_id_file.read_text().strip()
            self.format_storage(artifacts.java, classpath, config, cluster_id, "--ignore-formatted")
        self.process.start(
            self._java(artifacts.java, s.kafka_heap, "-cp", classpath, "kafka.Kafka", str(config))
        )

    def format_storage(self, java: Path, classpath: str, config: Path, cluster_id: str, *extra: str) -> None:
        """Kafka's storage tool `format` for a new KRaft node; `extra` adds its options (SCRAM users)."""
        # `--opt=value`: a value is never read as an option, whatever it starts with.
        command = self._java(java, "-Xmx256m", "-cp", classpath, "kafka.tools.StorageTool", "format",
                             f"--cluster-id={cluster_id}", f"--config={config}", *extra)  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError(
                f"formatting Kafka storage in {self.home} failed:\n{result.stdout}{result.stderr}"
            )

    def abort_hanging_transactions(
        self, artifacts: Artifacts, open_minutes: int = OPEN_MINUTES_DEFAULT
    ) -> list[HangingTransaction]:
        """Find transactions the coordinator has lost (open for `open_minutes` or more) and abort them.

        Safe to run at any time: the tool reports only transactions its coordinator does not list
        as ongoing on that partition, which nothing will ever commit or abort otherwise."""
        java = self._java(artifacts.java, "-Xmx128m", "-cp", f"{artifacts.kafka_libs}/*")
        bootstrap = self.settings.bootstrap_servers
        hanging = parse_find_hanging(
            run_tool(
                java,
                bootstrap,
                "find-hanging",
                "--broker-id",
                "1",
                "--max-transaction-timeout",
                str(open_minutes),
            )
        )
        aborted, failures = [], []
        for transaction in hanging:
            try:
                run_tool(java, bootstrap, "abort", "--topic", transaction.topic,
                         "--partition", str(transaction.partition),
                         "--start-offset", str(transaction.start_offset))  # fmt: skip
            except StackError as error:  # e.g. completed meanwhile, or the broker is still loading
                failures.append(f"{transaction}: {error}")
            else:
                aborted.append(transaction)
        if failures and not aborted:
            raise StackError("; ".join(failures))
        return aborted

    def is_ready(self) -> bool:
        if not port_is_open(self.settings.host, self.port):
            return False
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.settings.bootstrap_servers, "log_level": 0})
        try:
            metadata = admin.list_topics(timeout=3)
        except Exception:
            return False
        return bool(metadata.brokers)


class RegistryService(_JvmService):
    """Apicurio Registry 3 with its storage in the stack's PostgreSQL (survives restarts)."""

    name = "registry"

    @property
    def port(self) -> int:
        return self.settings.registry_port

    @property
    def ports(self) -> list[int]:
        return [self.settings.registry_port, self.settings.registry_management_port]

    def start(self, artifacts: Artifacts) -> None:
        s = self.settings
        self.home.mkdir(parents=True, exist_ok=True)
        env = {
            "QUARKUS_HTTP_HOST": s.host,
            "QUARKUS_HTTP_PORT": str(s.registry_port),
            # Apicurio is built with Quarkus' management interface (health, metrics) on; by default
            # it would take port 9000 on every interface. Keep it on loopback, on our port.
            "QUARKUS_MANAGEMENT_HOST": s.host,
            "QUARKUS_MANAGEMENT_PORT": str(s.registry_management_port),
            "APICURIO_STORAGE_KIND": "sql",
            "APICURIO_STORAGE_SQL_KIND": "postgresql",
            "APICURIO_DATASOURCE_URL": f"jdbc:postgresql://{s.host}:{s.postgres_port}/{s.registry_database}",
            "APICURIO_DATASOURCE_USERNAME": s.postgres_user,
            # Secrets go through the environment, never the command line (visible in `ps`).
            "APICURIO_DATASOURCE_PASSWORD": s.postgres_password.get_secret_value(),
        }
        command = self._java(
            artifacts.registry_java, s.registry_heap, "-jar", str(artifacts.registry_dir / "quarkus-run.jar")
        )
        self.process.start(command, env=env, cwd=self.home)

    def is_ready(self) -> bool:
        try:
            response = httpx.get(f"{self.settings.registry_url}/subjects", timeout=2)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def enforce_compatibility(self, level: str = "BACKWARD") -> bool:
        """Set the registry's global compatibility level (the bus runs BACKWARD; Apicurio's default
        is NONE, under which nothing would be enforced). Returns whether it changed."""
        url = f"{self.settings.registry_url}/config"
        try:
            current = httpx.get(url, timeout=10).json().get("compatibilityLevel")
            if current == level:
                return False
            response = httpx.put(url, json={"compatibility": level}, timeout=10)
        except httpx.HTTPError as error:
            raise StackError(f"setting the registry's global compatibility failed: {error}") from None
        if response.status_code != 200:
            raise StackError(
                f"setting the registry's global compatibility to {level} failed: "
                f"HTTP {response.status_code} {response.text[:300]}"
            )
        return True


class ConnectService(_JvmService):
    """A Kafka Connect distributed worker with the Debezium PostgreSQL connector plugin."""

    name = "connect"

    @property
    def port(self) -> int:
        return self.settings.connect_port

    def start(self, artifacts: Artifacts) -> None:
        s = self.settings
        config = self.home / "worker.properties"
        _write_properties(
            config,
            {
                "bootstrap.servers": s.bootstrap_servers,
                "group.id": "eventbus-connect",
                "listeners": f"http://{s.host}:{s.connect_port}",
                "rest.advertised.host.name": s.host,
                "rest.advertised.port": s.connect_port,
                # The staging format the transformer decodes: Connect JSON with schemas, so logical
                # types (decimals, timestamps) travel with every record.
                "key.converter": "org.apache.kafka.connect.json.JsonConverter",
                "value.converter": "org.apache.kafka.connect.json.JsonConverter",
                "key.converter.schemas.enable": "true",
                "value.converter.schemas.enable": "true",
                "config.storage.topic": "_connect-configs",
                "offset.storage.topic": "_connect-offsets",
                "status.storage.topic": "_connect-status",
                "config.storage.replication.factor": 1,
                "offset.storage.replication.factor": 1,
                "status.storage.replication.factor": 1,
                "offset.flush.interval.ms": 1000,
                "exactly.once.source.support": "enabled",
                "plugin.path": artifacts.connect_plugins,
                # Every plugin here (Kafka's, Debezium's) ships ServiceLoader manifests; the default
                # `hybrid_warn` also scans every class by reflection, which took 24-28 s of each
                # worker start on two busy cores (docs/connect-after-broker-restart.md).
                "plugin.discovery": "service_load",
                # Kafka's own config providers, so connector configs can say
                # `${file:/path:key}`, `${dir:/path:key}` or `${env:VAR}` instead of a secret.
                "config.providers": "file,dir,env",
                "config.providers.file.class": f"{_PROVIDERS}.FileConfigProvider",
                "config.providers.dir.class": f"{_PROVIDERS}.DirectoryConfigProvider",
                "config.providers.env.class": f"{_PROVIDERS}.EnvVarConfigProvider",
            },
        )
        classpath = f"{artifacts.kafka_libs}/*"
        self.process.start(
            self._java(artifacts.java, s.connect_heap, "-cp", classpath,
                       "org.apache.kafka.connect.cli.ConnectDistributed", str(config))
        )  # fmt: skip

    def is_ready(self) -> bool:
        try:
            # /health answers 200 only once the worker has read its internal topics and joined
            # the group; the REST server answers other calls before that.
            if httpx.get(f"{self.settings.connect_url}/health", timeout=5).status_code != 200:
                return False
            response = httpx.get(f"{self.settings.connect_url}/connector-plugins", timeout=2)
        except httpx.HTTPError:
            return False
        if response.status_code != 200:
            return False
        return any("PostgresConnector" in plugin.get("class", "") for plugin in response.json())
