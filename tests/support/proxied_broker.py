"""A private broker whose clients reach it only through a TCP proxy the test can cut.

Kafka clients connect to the bootstrap address once, then to the broker address the *metadata*
advertises; a plain proxy in front of the stack's broker would be bypassed after the first request.
So the test starts its own single-node broker (the stack's Kafka, its own ports and state folder)
with two client listeners:

- `EXTERNAL`, advertised at the proxy's port: the transformer under test bootstraps there, and
  every connection it opens goes through the proxy;
- `INTERNAL`, advertised at its real port, also the inter-broker listener (transaction markers go
  through it): the test's own producers and readers use it, so cutting the proxy never disturbs
  the test's view of the cluster.

`CuttableProxy.cut()` closes every proxied connection at once, both sides, as a network failure
would; clients reconnect through the proxy, which keeps accepting. `outage(s)` also turns new
connections away for s seconds.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from eventbus_dev.stack.artifacts import find_java
from eventbus_dev.stack.errors import StackError
from eventbus_dev.stack.services import KafkaService, _write_properties, new_kraft_cluster_id
from eventbus_dev.stack.settings import StackSettings
from tests.support.sasl_broker import free_port


class CuttableProxy:
    """Forwards 127.0.0.1:`port` to `target`; `cut()` drops every open connection."""

    def __init__(self, target: tuple[str, int], port: int | None = None) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", port or 0), reuse_port=False)
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self.accepted = 0
        self.cuts = 0
        self._closed = False
        self._refuse_until = 0.0
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed
            if time.monotonic() < self._refuse_until:
                client.close()  # an outage: the broker cannot be reached
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
                self.accepted += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass  # cut, or the other side went away
        finally:
            self._drop(source, sink)

    def _drop(self, *sockets: socket.socket) -> None:
        with self._lock:
            for sock in sockets:
                if sock in self._open:
                    self._open.discard(sock)
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                    sock.close()

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._open) // 2

    def cut(self) -> int:
        """Close every proxied connection, both ends; returns how many there were."""
        with self._lock:
            sockets = list(self._open)
        count = len(sockets) // 2
        self._drop(*sockets)
        self.cuts += 1
        return count

    def outage(self, seconds: float) -> int:
        """`cut()`, and close every new connection at once for `seconds`."""
        self._refuse_until = time.monotonic() + seconds
        return self.cut()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.cut()


class ProxiedBroker(KafkaService):
    """A single KRaft node: INTERNAL (direct) and EXTERNAL (advertised at the proxy) listeners."""

    def __init__(self, folder: Path) -> None:
        super().__init__(
            StackSettings(
                state_dir=folder / "state", kafka_port=free_port(), kafka_controller_port=free_port()
            )
        )
        self.external_port = free_port()
        self.proxy = CuttableProxy(("127.0.0.1", self.external_port))

    @property
    def bootstrap(self) -> str:
        """The test's own clients: straight to the broker, never cut."""
        return f"127.0.0.1:{self.port}"

    @property
    def proxied_bootstrap(self) -> str:
        """The client under test: through the proxy, for the bootstrap and every later connection."""
        return f"127.0.0.1:{self.proxy.port}"

    def start_broker(self, java: Path, kafka_libs: Path) -> None:
        s, host = self.settings, "127.0.0.1"
        config = self.home / "server.properties"
        _write_properties(config, {
            "process.roles": "broker,controller",
            "node.id": 1,
            "controller.quorum.voters": f"1@{host}:{s.kafka_controller_port}",
            "listeners": f"INTERNAL://{host}:{s.kafka_port},EXTERNAL://{host}:{self.external_port},"
                         f"CONTROLLER://{host}:{s.kafka_controller_port}",
            "advertised.listeners": f"INTERNAL://{host}:{s.kafka_port},EXTERNAL://{host}:{self.proxy.port}",
            "listener.security.protocol.map": "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "INTERNAL",
            "log.dirs": self.home / "data",
            "num.partitions": 1,
            "offsets.topic.replication.factor": 1,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,
            "auto.create.topics.enable": "false",
        })  # fmt: skip
        classpath = f"{kafka_libs}/*"
        self.format_storage(java, classpath, config, new_kraft_cluster_id())
        self.process.start(
            self._java(java, "-Xms128m -Xmx384m", "-cp", classpath, "kafka.Kafka", str(config))
        )

    def is_ready(self) -> bool:
        from confluent_kafka.admin import AdminClient

        try:
            admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
            return bool(admin.list_topics(timeout=3).brokers)
        except Exception:
            return False


@contextlib.contextmanager
def running_proxied_broker(folder: Path) -> Iterator[ProxiedBroker]:
    """A started `ProxiedBroker`, stopped on exit; skips without the stack's Kafka libraries."""
    import pytest

    kafka_libs = StackSettings().cache / "stack" / "kafka-libs"
    if not kafka_libs.is_dir():
        pytest.skip(f"the stack's Kafka libraries are not in {kafka_libs}")
    broker = ProxiedBroker(folder)
    broker.start_broker(find_java(17), kafka_libs)
    try:
        deadline = time.monotonic() + 120
        while not broker.is_ready():
            if time.monotonic() > deadline or not broker.process.is_running():
                raise StackError(f"the proxied broker did not become ready:\n{broker.process.tail()}")
            time.sleep(0.5)
        yield broker
    finally:
        broker.proxy.close()
        broker.process.stop(timeout=20)
