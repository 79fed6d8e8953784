"""Hanging transactions: found and aborted with Kafka's own `kafka-transactions` tool.

A transaction is *hanging* when a partition holds the start of it but the transaction coordinator
does not know it (it never will end it): the partition's last stable offset stays behind forever,
and every `read_committed` reader stops there. Seen on this stack after broker restarts under
load: Kafka Connect's exactly-once source producer left one on `_connect-offsets`, and every Connect
worker start then hung in `KafkaOffsetBackingStore.start` (reading that topic to its end) — see
docs/operations.md. Kafka offers the cure (KIP-664): `kafka-transactions find-hanging` and `abort`.
The Python client has no admin call for it, so the stack runs the tool from its Kafka classpath.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from eventbus_dev.stack.errors import StackError

TOOL = "org.apache.kafka.tools.TransactionsCommand"

# `find-hanging --max-transaction-timeout` (minutes): 0, every open transaction is a candidate. Safe,
# from the tool's own logic (Kafka 4.3.1 `FindHangingTransactionsCommand`): a candidate is reported
# only when its coordinator does not list that partition, and a coordinator lists every partition
# of an ongoing transaction (KIP-890: a partition leader accepts transactional data only once the
# coordinator has it) and, while committing or aborting, every partition still without its marker.
# The one race, markers written between the tool's two reads, reports a transaction that has ended;
# its abort then carries an epoch the partition has moved past and is refused (a failed abort is
# tolerated), or ends nothing. With 1 minute, a transaction lost while the broker shut down is found
# only 60-70 s after it began — beyond the minute a killed Connect worker has to recover in.
OPEN_MINUTES_DEFAULT = 0
# How often a waiting Connect worker's stack (and `make chaos`) looks for them.
CURE_PERIOD_S = 20.0


@dataclass(frozen=True)
class HangingTransaction:
    topic: str
    partition: int
    producer_id: int
    producer_epoch: int
    start_offset: int
    open_minutes: int

    def __str__(self) -> str:
        return (
            f"{self.topic}-{self.partition} from offset {self.start_offset} (producer {self.producer_id}, "
            f"epoch {self.producer_epoch}, open {self.open_minutes} min)"
        )


def parse_find_hanging(output: str) -> list[HangingTransaction]:
    """The rows of `find-hanging`'s table (tab-separated, after its header line)."""
    found = []
    for line in output.splitlines():
        # The tool pads each cell with spaces to its column's width: a topic name must be stripped,
        # or `abort --topic` is refused as an invalid topic.
        cells = [cell.strip() for cell in line.rstrip("\n").split("\t")]
        if len(cells) < 8 or cells[0] == "Topic" or not cells[1].strip().isdigit():
            continue
        topic, partition, producer, epoch, _coordinator_epoch, start, _last, minutes = cells[:8]
        numbers = (int(partition), int(producer), int(epoch), int(start), int(minutes or 0))
        found.append(HangingTransaction(topic, *numbers))
    return found


def run_tool(java_command: Sequence[str], bootstrap: str, *args: str, timeout_s: float = 120) -> str:
    """One `kafka-transactions` command; its standard output."""
    command = [*java_command, TOOL, "--bootstrap-server", bootstrap, *args]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"kafka-transactions {args[0]} did not answer within {timeout_s:.0f}s") from exc
    if result.returncode != 0:
        raise StackError(f"kafka-transactions {args[0]} failed: {tool_error(result.stdout + result.stderr)}")
    return result.stdout


def tool_error(output: str) -> str:
    """The tool's error lines, without the client configuration it dumps (hundreds of lines) first."""
    errors = [line.strip() for line in output.splitlines() if "Exception" in line or "ERROR" in line]
    return "\n".join(errors[-5:]) if errors else output[-1500:]
