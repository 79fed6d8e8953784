"""What `eventbus mapping new` says when its table's changes do not reach a staging topic of its own."""

from __future__ import annotations

from eventbus.sources.definition_files import parse_definition
from eventbus.sources.table_descriptions import capture_note

DEFINITION = """\
database: {host: 127.0.0.1, dbname: ops, user: cdc, password: {env: UNUSED}}
tables: [Ops.measurement, Ops.other]
snapshot_mode: no_data
"""


def test_a_partition_of_a_captured_table_is_said_to_be_mapped_through_its_root() -> None:
    """It said "add it to the tables", which would capture it beside its root: still no change."""
    definition = parse_definition(DEFINITION, "ops", "connectors/ops.yaml")
    note = capture_note("Ops.measurement_2026", ("Ops.measurement_y", "Ops.measurement"), definition)
    assert note is not None
    assert note.startswith(
        "Ops.measurement_2026 is a partition of Ops.measurement, which source ops captures"
    )
    assert "`--table Ops.measurement`" in note


def test_an_uncaptured_table_is_said_to_be_added_and_a_captured_one_needs_no_note() -> None:
    definition = parse_definition(DEFINITION, "ops", "connectors/ops.yaml")
    assert "is not in the tables of source ops" in str(capture_note("Ops.kw", (), definition))
    assert "is not in the tables" in str(capture_note("Ops.part", ("Ops.uncaptured",), definition))
    assert capture_note("Ops.other", (), definition) is None
