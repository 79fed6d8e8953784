"""`eventbus mapping new` writes all of its files or none: a failure at the last step (the starter's
own check, or moving the files into place) left the description and schemas behind, and the table
description was overwritten without --force. The database is replaced by a description built from
column types."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

import eventbus.mapping.scaffold_files as scaffold_files
import eventbus.mapping.testing as testing
from eventbus.cli import mapping_commands
from eventbus.cli.main import app
from eventbus.debezium.pg_types import PgColumn, key_description, table_description
from eventbus.sources import database, inspection, table_descriptions
from eventbus.sources.table_descriptions import Description

COLUMNS = [PgColumn("id", "int8", nullable=False), PgColumn("total", "numeric", length=8, scale=2)]
FILES = [
    "tables/public.orders.json",
    "tables/public.orders.key.json",
    "schemas/orders_changed_key.avsc",
    "schemas/orders_changed.avsc",
    "orders_changed.yaml",
]


@pytest.fixture
def columns() -> list[PgColumn]:
    return list(COLUMNS)


@pytest.fixture(autouse=True)
def _database(monkeypatch: pytest.MonkeyPatch, columns: list[PgColumn]) -> None:
    """`mapping new` against a table with `columns`, without a database."""
    definition = SimpleNamespace(
        name="shop",
        resolve_password=lambda: "",
        tables=("public.orders",),
        file=None,
        key_columns_of=lambda table: (),
    )
    settings = SimpleNamespace(mappings_dir=Path("unused"))
    monkeypatch.setattr(mapping_commands, "_source_definition", lambda name: (definition, settings))
    monkeypatch.setattr(database, "connect", lambda *args: contextlib.nullcontext())

    def describe(connection: Any, source: str, table: str, declared_key: tuple[str, ...] = ()) -> Description:
        value, skipped = table_description("staging.shop", table, columns)
        key = key_description("staging.shop", table, columns[:1])
        return Description(table, value, key, tuple(skipped), ("id",))

    monkeypatch.setattr(table_descriptions, "live_description", describe)
    monkeypatch.setattr(inspection, "ancestors_of", lambda connection, table: ())


def _new(folder: Path, *more: str) -> Any:
    arguments = ["mapping", "new", "orders_changed", "--source", "shop", "--table", "public.orders"]
    return CliRunner().invoke(app, [*arguments, "--dir", str(folder), *more])


def _files(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def test_everything_is_written_when_everything_succeeds(tmp_path: Path) -> None:
    created = _new(tmp_path / "shop")
    assert created.exit_code == 0, created.output
    assert sorted(f for f in _files(tmp_path / "shop") if "." in f) == sorted(FILES)
    assert f"ok  {tmp_path / 'shop' / 'orders_changed.yaml'}: valid, 1 test(s) pass" in created.output
    for name in FILES:
        assert f"wrote {tmp_path / 'shop' / name}" in created.output


def test_a_failing_check_of_the_starter_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(path: Path) -> list[Any]:
        raise RuntimeError("the test generation broke")

    monkeypatch.setattr(testing, "test_mapping_file", fail)
    created = _new(tmp_path / "shop")
    assert created.exit_code != 0 and isinstance(created.exception, RuntimeError)
    assert not (tmp_path / "shop").exists()


def test_a_starter_failing_its_test_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    failing = SimpleNamespace(passed=False, headline=lambda: "an insert", diff=["- x", "+ y"])
    monkeypatch.setattr(testing, "test_mapping_file", lambda path: [failing])
    created = _new(tmp_path / "shop")
    assert created.exit_code == 1
    assert "the starter mapping failed its own check (a bug of `mapping new`): nothing was written" in (
        created.output
    )
    assert not (tmp_path / "shop").exists()


def _failing_last_rename(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    replace = os.replace

    def flaky(source: Any, destination: Any) -> None:
        calls.append(destination)
        if len(calls) == len(FILES):
            raise OSError(28, "No space left on device")
        replace(source, destination)

    monkeypatch.setattr(scaffold_files.os, "replace", flaky)


def test_a_failure_moving_the_last_file_into_place_leaves_no_file_or_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "other.yaml").write_text("kept")
    _failing_last_rename(monkeypatch)
    created = _new(tmp_path / "shop")
    assert created.exit_code == 2 and "No space left on device; nothing was written" in created.output
    assert _files(tmp_path / "shop") == ["other.yaml"]


def test_a_failed_forced_overwrite_puts_the_old_files_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _new(tmp_path / "shop").exit_code == 0
    before = {name: (tmp_path / "shop" / name).read_text() for name in FILES}
    for name in FILES:
        (tmp_path / "shop" / name).write_text(before[name] + "\n# edited\n")
    _failing_last_rename(monkeypatch)
    assert _new(tmp_path / "shop", "--force").exit_code == 2
    assert {name: (tmp_path / "shop" / name).read_text() for name in FILES} == {
        name: text + "\n# edited\n" for name, text in before.items()
    }
    assert sorted(f for f in _files(tmp_path / "shop") if "." in f) == sorted(FILES)  # no temporary left


def test_existing_files_with_other_content_are_kept_without_force(tmp_path: Path) -> None:
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "orders_changed.yaml").write_text("# mine\n")
    refused = _new(folder)
    assert (
        refused.exit_code == 2
        and "orders_changed.yaml exist(s) with other content; --force" in refused.output
    )
    assert (
        _files(folder) == ["orders_changed.yaml"]
        and (folder / "orders_changed.yaml").read_text() == "# mine\n"
    )
    forced = _new(folder, "--force")
    assert forced.exit_code == 0, forced.output
    assert (folder / "orders_changed.yaml").read_text().startswith("# Generated by `eventbus mapping new`")


def test_a_description_of_the_table_is_shared_when_equal_and_kept_when_not(
    tmp_path: Path, columns: list[PgColumn]
) -> None:
    """A second mapping of a table reuses its description; a changed table's description is another
    mapping's too, so it is replaced only when asked (it was overwritten silently)."""
    folder = tmp_path / "shop"
    assert _new(folder).exit_code == 0
    (folder / "orders_changed.yaml").rename(folder / "first.yaml")
    description = (folder / "tables" / "public.orders.json").stat().st_mtime_ns
    again = _new(folder)
    assert again.exit_code == 0, again.output
    assert f"wrote {folder / 'tables'}" not in again.output and f"wrote {folder / 'orders_changed.yaml'}" in (
        again.output
    )
    assert (folder / "tables" / "public.orders.json").stat().st_mtime_ns == description
    columns.append(PgColumn("note", "text"))
    (folder / "orders_changed.yaml").unlink()
    changed = _new(folder)
    assert changed.exit_code == 2
    said = changed.output.replace("\n", " ")
    assert f"{folder / 'tables' / 'public.orders.json'}, " in said
    assert "exist(s) with other content; --force overwrites, or refresh the description" in said
    assert "`eventbus mapping tables --source shop`; nothing was written" in said
    assert not (folder / "orders_changed.yaml").exists()
    assert '"note"' not in (folder / "tables" / "public.orders.json").read_text()
