"""Reading `kafka-transactions find-hanging`'s table (the stack aborts what it lists)."""

from __future__ import annotations

from pathlib import Path

from eventbus_dev.stack.transactions import HangingTransaction, parse_find_hanging

# As Kafka 4.3's tool prints it: a header, then one tab-separated row per hanging transaction;
# log lines may be interleaved on the same stream.
OUTPUT = (
    "[2026-12-01 08:20:01,002] INFO Kafka version: 4.3.1 (AppInfoParser)\n"
    "Topic\tPartition\tProducerId\tProducerEpoch\tCoordinatorEpoch\tStartOffset\tLastTimestamp\tDuration(min)\t\n"
    "_connect-offsets\t2\t1000\t7819\t4\t15860\t1796110527407\t45\t\n"
    "staging.claims.public.claims\t11\t17\t3\t-1\t7\t1796110527000\t2\t\n"
)


def test_every_row_is_read_and_the_header_and_logs_are_not() -> None:
    assert parse_find_hanging(OUTPUT) == [
        HangingTransaction("_connect-offsets", 2, 1000, 7819, 15860, 45),
        HangingTransaction("staging.claims.public.claims", 11, 17, 3, 7, 2),
    ]


def test_the_tools_padded_cells_are_stripped() -> None:
    # As the tool printed it on 2026-12-02 (columns padded to their width); the padded topic name
    # made `abort --topic` fail with "invalid topic".
    padded = (
        "Topic                          \tPartition\tProducerId\tProducerEpoch\tCoordinatorEpoch\t"
        "StartOffset\tLastTimestamp\tDuration(min)\t\n"
        "_connect-offsets               \t6        \t8000      \t60           \t80              \t"
        "155        \t1796180452794\t2            \t\n"
    )
    assert parse_find_hanging(padded) == [HangingTransaction("_connect-offsets", 6, 8000, 60, 155, 2)]


def test_nothing_hanging_is_an_empty_list() -> None:
    assert parse_find_hanging(OUTPUT.splitlines(keepends=True)[1]) == []


def test_the_description_names_partition_offset_and_producer() -> None:
    text = str(HangingTransaction("_connect-offsets", 2, 1000, 7819, 15860, 45))
    assert text == "_connect-offsets-2 from offset 15860 (producer 1000, epoch 7819, open 45 min)"


def test_a_failed_run_says_the_tools_error_not_its_configuration_dump() -> None:
    from eventbus_dev.stack.transactions import tool_error

    output = (
        "[2026-12-02 03:59:50,001] INFO AdminClientConfig values:\n"
        "\tsasl.oauthbearer.scope = null\n"
        * 200
        + 'Exception in thread "main" org.apache.kafka.common.errors.InvalidTxnStateException: '
        "The producer attempted a transactional operation in an invalid state.\n"
        "\tsecurity.protocol = PLAINTEXT\n"
    )
    assert tool_error(output) == (
        'Exception in thread "main" org.apache.kafka.common.errors.InvalidTxnStateException: '
        "The producer attempted a transactional operation in an invalid state."
    )


def test_a_cure_that_cannot_run_now_does_not_stop_the_stack(tmp_path: Path) -> None:
    """`stack up` waits for Connect and looks for hanging transactions every minute; a look that
    fails (broker restarting, a transaction completed meanwhile) is logged and tried again later."""
    from eventbus_dev.stack.errors import StackError
    from eventbus_dev.stack.launcher import LocalStack
    from eventbus_dev.stack.settings import StackSettings

    said: list[str] = []
    stack = LocalStack(StackSettings(state_dir=tmp_path), log=said.append)

    def failing(*_: object) -> list[HangingTransaction]:
        raise StackError("kafka-transactions abort failed: InvalidTxnStateException")

    stack.kafka.abort_hanging_transactions = failing  # type: ignore[method-assign]
    assert stack._abort_hanging_transactions(artifacts=None) == []  # type: ignore[arg-type]
    assert any("not cured this time" in line and "InvalidTxnStateException" in line for line in said)
