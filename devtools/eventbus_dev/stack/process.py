"""Background processes owned by the stack: start detached, find again by pid file, stop.

A pid file alone can lie (the process died and the pid was reused), so a process counts as ours only
when its command line still contains the marker we started it with (a path inside our state folder).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from eventbus_dev.stack.errors import StackError


def process_cmdline(pid: int) -> str | None:
    """The command line of a live process, or None when there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    if not raw:  # a zombie has an empty command line
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace")


def port_is_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class ManagedProcess:
    """One long-running service process with its pid file and log file."""

    name: str
    pid_file: Path
    log_file: Path
    marker: str

    def pid(self) -> int | None:
        """The pid of our live process, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        cmdline = process_cmdline(pid)
        if cmdline is None or self.marker not in cmdline:
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid

    def is_running(self) -> bool:
        return self.pid() is not None

    def start(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
    ) -> int:
        """Start `command` detached from our terminal, output appended to the log file."""
        if self.marker not in " ".join(command):
            raise StackError(f"internal: {self.name} command does not carry its marker {self.marker!r}")
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {self.name}\n".encode())
            log.flush()
            process = subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # own process group: survives our exit, stopped as a group
                # Drop root's groups too: the service runs with its own user's identity only.
                user=user,
                group=user,
                extra_groups=[] if user else None,
            )
        self.pid_file.write_text(f"{process.pid}\n")
        # Until the child has exec'd, /proc shows our own command line; wait so that `pid()` right
        # after `start()` does not mistake the fresh child for a foreign process.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and process.poll() is None:
            cmdline = process_cmdline(process.pid)
            if cmdline is not None and self.marker in cmdline:
                break
            time.sleep(0.01)
        return process.pid

    def stop(self, *, stop_signal: int = signal.SIGTERM, timeout: float = 30.0) -> bool:
        """Stop the process group gracefully, then forcibly. Returns whether something was stopped."""
        pid = self.pid()
        if pid is None:
            return False
        _signal_group(pid, stop_signal)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process_cmdline(pid) is None:
                break
            time.sleep(0.2)
        else:
            _signal_group(pid, signal.SIGKILL)
            time.sleep(0.5)
        _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> None:
        """SIGKILL the whole process group (for fault-injection tests)."""
        pid = self.pid()
        if pid is not None:
            _signal_group(pid, signal.SIGKILL)
            _reap(pid)

    def tail(self, lines: int = 50) -> str:
        """The last lines of the log file."""
        try:
            content = self.log_file.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(content[-lines:])


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    # When the child was started by this very process, collect it so it does not linger as a zombie.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
