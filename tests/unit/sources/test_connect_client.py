"""Connect REST client: readable errors for a Connect that is down or refuses, traces summarised."""

from __future__ import annotations

import socket

import httpx
import pytest

from eventbus.sources.connect_client import ConnectClient, ConnectorState, summarise_trace
from eventbus.sources.errors import ConnectRequestError, ConnectUnavailableError

HEAD = "org.apache.kafka.connect.errors.ConnectException: An exception occurred in the change event producer."
TRACE = f"""{HEAD}
\tat io.debezium.pipeline.ErrorHandler.setProducerThrowable(ErrorHandler.java:67)
\tat io.debezium.connector.postgresql.PostgresStreamingChangeEventSource.execute(PostgresStream.java:180)
\t... 5 more
Caused by: org.postgresql.util.PSQLException: ERROR: publication "eventbus_x" does not exist
  Where: slot "eventbus_x", output plugin "pgoutput", in the change callback
\tat org.postgresql.core.v3.QueryExecutorImpl.receiveErrorResponse(QueryExecutorImpl.java:2725)
\t... 12 more
"""


def test_trace_keeps_the_exception_and_its_cause_only() -> None:
    assert summarise_trace(TRACE) == (
        f"{HEAD}\n"
        'caused by: org.postgresql.util.PSQLException: ERROR: publication "eventbus_x" does not exist'
    )


def test_failed_task_is_reported_with_its_summary() -> None:
    state = ConnectorState.from_json(
        {
            "name": "c",
            "connector": {"state": "RUNNING", "worker_id": "w"},
            "tasks": [{"id": 0, "state": "FAILED", "worker_id": "w", "trace": TRACE}],
        }
    )
    assert not state.running
    assert state.failure is not None
    assert state.failure.startswith("connector c task 0 FAILED:\n")
    assert 'publication "eventbus_x" does not exist' in state.failure
    assert "\tat " not in state.failure
    assert state.to_json()["tasks"][0]["error"].endswith("does not exist")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed once the socket is: nothing listens there


def test_connect_down_is_one_message_naming_the_url() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with ConnectClient(url) as client, pytest.raises(ConnectUnavailableError) as caught:
        client.get_config("x")
    message = str(caught.value)
    assert url in message
    assert "connection refused" in message
    assert "EVENTBUS_CONNECT_URL" in message


def test_connect_error_answer_carries_connects_message() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            return httpx.Response(
                400, json={"error_code": 400, "message": "Connector configuration is invalid: slot.name"}
            )
        return httpx.Response(404, json={"error_code": 404, "message": "not found"})

    with ConnectClient("http://connect.test", transport=httpx.MockTransport(handler)) as client:
        assert client.get_config("x") is None
        assert client.status("x") is None
        with pytest.raises(ConnectRequestError) as caught:
            client.put_config("x", {"a": "b"})
    assert str(caught.value) == (
        "Kafka Connect refused to accept the config of x (HTTP 400): "
        "Connector configuration is invalid: slot.name"
    )


def test_rebalance_conflict_is_retried() -> None:
    answers = iter([httpx.Response(409, json={"message": "rebalance"}), httpx.Response(201, json={})])
    with ConnectClient(
        "http://connect.test", transport=httpx.MockTransport(lambda r: next(answers))
    ) as client:
        assert client.put_config("x", {}) is True


@pytest.mark.parametrize(
    ("connector", "tasks", "worst"),
    [
        ("RUNNING", ["RUNNING", "RUNNING"], "RUNNING"),
        ("RUNNING", ["RUNNING", "FAILED"], "FAILED"),
        ("RUNNING", ["UNASSIGNED"], "UNASSIGNED"),
        ("RUNNING", [], "NO TASKS"),
        ("PAUSED", ["PAUSED"], "PAUSED"),
        ("RUNNING", ["SOMETHING NEW"], "SOMETHING NEW"),  # unknown: as bad as UNASSIGNED
        ("FAILED", ["RUNNING"], "FAILED"),
    ],
)
def test_the_header_state_is_the_worst_of_connector_and_tasks(
    connector: str, tasks: list[str], worst: str
) -> None:
    state = ConnectorState.from_json({
        "name": "c", "connector": {"state": connector, "worker_id": "w"},
        "tasks": [{"id": n, "state": s, "worker_id": "w"} for n, s in enumerate(tasks)],
    })  # fmt: skip
    assert state.worst == worst


def test_a_register_that_meets_offsets_of_a_gone_slot_names_the_fix() -> None:
    from eventbus.sources.errors import ConnectorFailedError
    from eventbus.sources.registration import _wait_running

    gone = (
        "io.debezium.DebeziumException: The connector is trying to read change stream starting at "
        "PostgresOffsetContext [lsn=LSN{0/1F8E4A0}], but this is no longer available on the server. "
        "Reconfigure the connector to use a snapshot mode when needed."
    )

    def connect(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={
            "name": "eventbus-source-claims", "connector": {"state": "RUNNING", "worker_id": "w"},
            "tasks": [{"id": 0, "state": "FAILED", "worker_id": "w", "trace": gone}],
        })  # fmt: skip

    transport = httpx.MockTransport(connect)
    with (
        ConnectClient("http://connect", transport=transport) as client,
        pytest.raises(ConnectorFailedError) as caught,
    ):
        _wait_running(client, "eventbus-source-claims", 0.0, restart_failed=False, log=print, source="claims")
    message = str(caught.value)
    assert "no longer available on the server" in message
    assert "`eventbus source remove claims --drop-slot --yes`" in message


def test_restart_restarts_connector_and_every_task_then_waits_until_they_run() -> None:
    from pathlib import Path

    from eventbus.sources.definition_files import parse_definition
    from eventbus.sources.errors import SourceError
    from eventbus.sources.registration import restart

    fixtures = Path(__file__).resolve().parents[2] / "fixtures" / "connectors"
    definition = parse_definition((fixtures / "valid" / "minimal.yaml").read_text(), "minimal")
    requests: list[str] = []
    states = iter(["RESTARTING", "RUNNING"])

    def connect(request: httpx.Request) -> httpx.Response:
        requests.append(f"{request.method} {request.url.path}?{request.url.query.decode()}")
        if request.method == "POST":
            return httpx.Response(202, json={})
        state = next(states, "RUNNING")
        return httpx.Response(200, json={
            "name": definition.connector_name, "connector": {"state": "RUNNING", "worker_id": "w"},
            "tasks": [{"id": 0, "state": state, "worker_id": "w"}],
        })  # fmt: skip

    with ConnectClient("http://connect", transport=httpx.MockTransport(connect)) as client:
        state = restart(definition, client, timeout_s=10)
    assert state.running
    restart_call = f"POST /connectors/{definition.connector_name}/restart?includeTasks=true&onlyFailed=false"
    assert restart_call in requests

    def absent(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"message": "not found"})

    transport = httpx.MockTransport(absent)
    with ConnectClient("http://connect", transport=transport) as client, pytest.raises(SourceError) as caught:
        restart(definition, client)
    assert "`eventbus source register minimal` creates it" in str(caught.value)


def test_a_second_connector_on_a_slot_is_refused_before_anything_changes() -> None:
    """Two sources naming one slot: the second connector ran, retried "slot is active" forever and
    register said it was streaming (the slot was active: held by the first)."""
    from eventbus.sources.definition_files import parse_definition
    from eventbus.sources.errors import SourceError
    from eventbus.sources.registration import refuse_a_shared_slot

    text = (
        "database: {host: db.internal, dbname: claims, user: cdc, password: {env: X}}\n"
        "tables: [public.claims]\nsnapshot_mode: no_data\nslot: shared_slot\n"
    )
    definition = parse_definition(text, "second", "connectors/second.yaml")
    others = {
        "eventbus-source-first": {"database.hostname": "db.internal", "database.dbname": "claims",
                                  "database.port": "5432", "slot.name": "shared_slot"},
        "elsewhere": {"database.hostname": "other-db", "database.dbname": "claims",
                      "slot.name": "shared_slot"},
    }  # fmt: skip

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/connectors":
            return httpx.Response(200, json=sorted(others))
        name = request.url.path.split("/")[2]
        return httpx.Response(200, json=others[name])

    with ConnectClient("http://connect", transport=httpx.MockTransport(answer)) as client:
        with pytest.raises(SourceError, match="already read by connector eventbus-source-first"):
            refuse_a_shared_slot(client, definition)
        del others["eventbus-source-first"]
        refuse_a_shared_slot(client, definition)  # the same slot name on another database is fine
