"""Names in the SQL `eventbus` prints and runs are quoted as PostgreSQL reads them back."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventbus.sql_names import quote_ident, quote_table

BENCH_MAPPING = Path(__file__).resolve().parents[2] / "bench" / "mappings" / "claim_decided.yaml"


@pytest.mark.parametrize(
    ("name", "sql"),
    [
        ("claims", "claims"),
        ("claims_2024$x", "claims_2024$x"),
        ("order", '"order"'),  # reserved words
        ("user", '"user"'),
        ("ClaimNotes", '"ClaimNotes"'),  # PostgreSQL would fold it to claimnotes
        ("2fa", '"2fa"'),
        ("a b", '"a b"'),
        ('say "hi"', '"say ""hi"""'),
    ],
)
def test_a_name_is_quoted_only_when_postgresql_would_not_read_it_back(name: str, sql: str) -> None:
    assert quote_ident(name) == sql


@pytest.mark.parametrize("word", ["lateral", "system_user", "collation", "concurrently", "tablesample"])
def test_postgresql_keywords_sqlalchemy_does_not_list_are_quoted(word: str) -> None:
    """Reserved in PostgreSQL (lateral since 9.3, system_user since 16) or keywords that cannot be a
    column or schema name (collation, concurrently, tablesample): `ALTER COLUMN collation ...` is a
    syntax error, and SQLAlchemy's list of reserved words has none of them."""
    assert quote_ident(word) == f'"{word}"'
    assert quote_ident(word.upper()) == f'"{word.upper()}"'


def test_a_qualified_table_quotes_each_part() -> None:
    assert quote_table("public.order") == 'public."order"'
    assert quote_table("Sales.line.items") == '"Sales"."line.items"'  # a schema name has no dot


def test_the_transformer_loads_sqlalchemy_only_when_it_names_a_table() -> None:
    """The service compiles mappings (whose dead-letter reason names a table) but needs no SQLAlchemy."""
    import subprocess
    import sys

    # claim_decided reads before.status: its no-old-row reason names public.claims
    code = (
        "import sys; from pathlib import Path; import eventbus.service.app; "
        "from eventbus.mapping import compile_mapping, load_mapping; "
        f"compile_mapping(load_mapping(Path({str(BENCH_MAPPING)!r}))); print('sqlalchemy' in sys.modules)"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == "False"
