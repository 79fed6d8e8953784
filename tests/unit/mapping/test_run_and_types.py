"""`eventbus mapping run` (`run_records`) over recorded records, and what validate refuses about types."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from eventbus.mapping import compile_mapping, load_mapping
from eventbus.mapping.errors import MappingError
from eventbus.mapping.testing import run_records
from tests.unit.contracts.conftest import SAMPLE


def test_schemaless_records_of_another_table_are_never_read_as_the_mapped_one() -> None:
    """`mapping run` on records written with schemas.enable=false: the captured schema of the
    mapped table converts that table's records only; a delete of another table is skipped."""
    compiled = compile_mapping(load_mapping(SAMPLE / "claim_withdrawn.yaml"))

    def delete(table: str, before: dict[str, object]) -> str:
        source = {"version": "3.6.1.Final", "connector": "postgresql", "name": "claims",
                  "ts_ms": 1767700000000, "snapshot": "false", "db": "claims", "schema": "public",
                  "table": table, "txId": 7, "lsn": 4242, "sequence": '["4200","4242"]'}  # fmt: skip
        return orjson.dumps({"before": before, "after": None, "source": source, "op": "d"}).decode()

    outcome = run_records(compiled, [
        delete("contentions", {"contention_id": 11, "claim_id": 3003, "status": "OPEN"}),
        delete("claims", {"claim_id": 3003, "status": "UNDER_REVIEW"}),
    ])  # fmt: skip
    assert [event["value"] for event in outcome.events] == [
        {"claim_id": 3003, "last_status": "UNDER_REVIEW", "withdrawn_at_ms": 1767700000000}
    ]
    assert outcome.skipped == 1 and outcome.dead_letters == []


def test_a_numeric_column_into_a_double_or_long_field_is_refused_with_the_decimal_hint(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "m"
    shutil.copytree(Path(__file__).resolve().parents[3] / "bench" / "mappings", folder)
    schema = folder / "schemas" / "claim_decided.avsc"
    decimal = '{"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}'
    assert decimal in schema.read_text()
    for avro_type, wanted in (('"double"', "a double cannot hold every decimal exactly"),
                              ('"long"', "an exact decimal may have a fraction")):  # fmt: skip
        schema.write_text(schema.read_text().replace(decimal, avro_type))
        with pytest.raises(MappingError) as refused:
            compile_mapping(load_mapping(folder / "claim_decided.yaml"))
        message = refused.value.render()
        assert wanted in message and "decimal(p, s)" in message and "claim_decided.yaml:27" in message
        schema.write_text(schema.read_text().replace(avro_type, decimal))
    # Said explicitly, the rounding is the author's choice.
    schema.write_text(schema.read_text().replace(decimal, '"double"'))
    mapping = folder / "claim_decided.yaml"
    mapping.write_text(mapping.read_text().replace("amount: after.amount", "amount: float(after.amount)"))
    mapping.write_text(
        mapping.read_text().replace('amount: "1234.50", decided_at', "amount: 1234.5, decided_at")
    )
    assert compile_mapping(load_mapping(mapping)).spec.name == "claim_decided"


def test_validate_says_when_columns_are_not_checked(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from eventbus.cli.mapping_commands import app

    folder = tmp_path / "m"
    shutil.copytree(Path(__file__).resolve().parents[3] / "bench" / "mappings", folder)
    checked = CliRunner().invoke(app, ["validate", str(folder)])
    assert checked.exit_code == 0 and "columns not checked" not in checked.output
    shutil.rmtree(folder / "tables")
    unchecked = CliRunner().invoke(app, ["validate", str(folder)])
    assert unchecked.exit_code == 0, unchecked.output
    assert f"columns not checked: {folder / 'tables' / 'public.claims.json'} is missing" in unchecked.output


def test_validate_names_the_description_of_a_source_table_written_in_another_case(tmp_path: Path) -> None:
    """`table: Public.Claims` for public.claims validated "ok", columns not checked, "save a
    description there": nothing said the name is another table, whose staging topic never fills."""
    from typer.testing import CliRunner

    from eventbus.cli.mapping_commands import app

    folder = tmp_path / "m"
    shutil.copytree(Path(__file__).resolve().parents[3] / "bench" / "mappings", folder)
    mapping = folder / "claim_decided.yaml"
    assert "table: public.claims" in mapping.read_text()
    mapping.write_text(mapping.read_text().replace("table: public.claims", "table: Public.Claims"))
    checked = CliRunner().invoke(app, ["validate", str(mapping)])
    assert checked.exit_code == 0, checked.output
    assert "source.table Public.Claims: did you mean 'public.claims'?" in checked.output


def test_an_inline_test_value_of_a_numeric_column_has_the_columns_scale() -> None:
    """Debezium sends 0.1 of a numeric(12, 10) column as 0.1000000000: an inline test saw 0.1, so
    str(), concat() and hash() of it passed a test and published other text in the service."""
    from decimal import Decimal

    from eventbus.mapping.tables import ColumnInfo
    from eventbus.mapping.test_values import UnfitTestData, decoded_row

    numeric = ColumnInfo("n", "decimal", True, "bytes", "org.apache.kafka.connect.data.Decimal", 12, 10)
    row = decoded_row({"n": numeric}, {"n": "0.1"}, "after")
    assert row is not None and str(row["n"]) == "0.1000000000" and row["n"] == Decimal("0.1")
    with pytest.raises(UnfitTestData, match="keeps 10 decimal place"):
        decoded_row({"n": numeric}, {"n": "0.12345678901"}, "after")


@pytest.mark.parametrize(
    ("precision", "scale", "written", "decoded"),
    [
        (38, 10, "1234567890123456789012345678.5", "1234567890123456789012345678.5000000000"),
        (40, 0, "9" * 40, "9" * 40),
        (40, -2, "1" * 38 + "00", "1" * 38 + "00"),
    ],
)
def test_an_inline_test_value_of_a_long_numeric_keeps_every_digit(
    precision: int, scale: int, written: str, decoded: str
) -> None:
    """A value of more than 28 digits (Python's default decimal precision) in a numeric(38, 10) or
    numeric(40, -2) column: setting it to the column's scale raised decimal.InvalidOperation out of
    `mapping test` instead of giving the value the service decodes."""
    from decimal import Decimal

    from eventbus.mapping.tables import ColumnInfo
    from eventbus.mapping.test_values import UnfitTestData, decoded_row

    numeric = ColumnInfo(
        "n", "decimal", True, "bytes", "org.apache.kafka.connect.data.Decimal", precision, scale
    )
    row = decoded_row({"n": numeric}, {"n": written}, "after")
    assert row is not None and str(row["n"]) == decoded and row["n"] == Decimal(written)
    if scale < 0:
        with pytest.raises(UnfitTestData, match="rounds to multiples of 100"):
            decoded_row({"n": numeric}, {"n": "1" * 40}, "after")
