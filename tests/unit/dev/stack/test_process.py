"""ManagedProcess: pid files that lie are recognised; stop stops the whole group."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from eventbus_dev.stack.process import ManagedProcess, port_is_open, process_cmdline


def _managed(tmp_path: Path) -> ManagedProcess:
    marker = str(tmp_path / "svc")
    return ManagedProcess("svc", tmp_path / "svc.pid", tmp_path / "svc.log", marker)


def _sleeper(marker: str) -> list[str]:
    # The marker rides along as an ignored argument, as a config path does for real services.
    return [sys.executable, "-c", "import time, sys; print('up', flush=True); time.sleep(60)", marker]


def test_start_records_pid_and_stop_ends_it(tmp_path: Path) -> None:
    process = _managed(tmp_path)
    pid = process.start(_sleeper(process.marker))
    assert process.pid() == pid
    assert process_cmdline(pid) is not None
    assert process.stop(timeout=5)
    assert process_cmdline(pid) is None
    assert not process.pid_file.exists()
    assert process.stop() is False  # nothing left to stop


def test_stale_pid_file_of_dead_process_is_cleared(tmp_path: Path) -> None:
    process = _managed(tmp_path)
    pid = process.start(_sleeper(process.marker))
    process.kill()
    time.sleep(0.2)
    assert process.pid() is None
    assert not process.pid_file.exists()
    assert process_cmdline(pid) is None


def test_pid_reused_by_foreign_process_is_not_ours(tmp_path: Path) -> None:
    process = _managed(tmp_path)
    process.pid_file.write_text("1\n")  # init: alive, but its command line lacks our marker
    assert process.pid() is None
    assert not process.pid_file.exists()


def test_log_file_collects_output(tmp_path: Path) -> None:
    process = _managed(tmp_path)
    process.start(_sleeper(process.marker))
    try:
        deadline = time.monotonic() + 5
        while "up" not in process.tail() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.tail().splitlines()[-1] == "up"
    finally:
        process.stop(timeout=5)


def test_port_is_open_reports_listening_sockets() -> None:
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert port_is_open("127.0.0.1", port)
    assert not port_is_open("127.0.0.1", port)
