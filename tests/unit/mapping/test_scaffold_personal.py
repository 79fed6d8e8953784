"""`mapping new` points out columns whose names look personal, suggesting their classification in a
comment, and the starter mapping still validates and passes its test."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from eventbus.debezium.pg_types import PgColumn, table_description
from eventbus.mapping import compile_mapping, load_mapping
from eventbus.mapping.errors import MappingError
from eventbus.mapping.personal_names import looks_personal
from eventbus.mapping.scaffold import scaffold_mapping
from eventbus.mapping.testing import test_mapping_file

COLUMNS = [
    PgColumn("id", "int4", nullable=False),
    PgColumn("ssn", "text"),
    PgColumn("EmailAddress", "text"),
    PgColumn("first_name", "text"),
    PgColumn("date_of_birth", "date"),
    PgColumn("home_zip", "varchar", length=10),
    PgColumn("amount", "numeric", length=8, scale=2),
    PgColumn("status", "text"),
]


@pytest.mark.parametrize(
    ("name", "personal"),
    [
        ("ssn", True), ("social_security_no", True), ("email", True), ("e_mail", True),
        ("EmailAddress", True), ("phone_number", True), ("dob", True), ("birth_date", True),
        ("first_name", True), ("LastName", True), ("street_address", True), ("zip", True),
        ("postal_code", True), ("homeZIPCode", True), ("tax_id", True),
        ("id", False), ("amount", False), ("status", False), ("unzipped", False), ("names_count", False),
        ("created_at", False), ("first_seen", False),
    ],
)  # fmt: skip
def test_names_that_look_personal(name: str, personal: bool) -> None:
    assert looks_personal(name) is personal


def test_personal_looking_columns_get_a_classification_suggestion_and_the_mapping_still_loads(
    tmp_path: Path,
) -> None:
    envelope, _ = table_description("staging.people", "public.people", COLUMNS)
    scaffold = scaffold_mapping(
        "person_changed", connector="people", table="public.people", description=envelope,
        key_columns=("id",),
    )  # fmt: skip
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "public.people.json").write_bytes(orjson.dumps(envelope))
    for relative, text in scaffold.files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    mapping = tmp_path / "person_changed.yaml"
    text = mapping.read_text()
    fields = ("ssn", "EmailAddress", "first_name", "date_of_birth", "home_zip")
    suggestion = "".join(f"#   {field}: pii\n" for field in fields)
    assert "# sensitivity:\n" + suggestion in text
    assert "amount: pii" not in text and "status: pii" not in text
    assert any(f"{', '.join(fields)} look personal" in note for note in scaffold.notes)
    compile_mapping(load_mapping(mapping))
    assert [result.passed for result in test_mapping_file(mapping)] == [True]
    # The suggestion is what the loader then enforces: taken as it is, pii fields published as
    # they are stop the mapping from loading until hashed, masked or allowed
    classified = "sensitivity:\n" + suggestion.replace("#   ", "  ")
    uncommented = text.replace("# sensitivity:\n" + suggestion, classified)
    mapping.write_text(uncommented)
    with pytest.raises(MappingError, match="marked pii and this expression publishes it as it is"):
        compile_mapping(load_mapping(mapping))
