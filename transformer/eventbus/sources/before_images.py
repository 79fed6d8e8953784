"""Which captured tables need full `before` images, read from the mappings folder.

PostgreSQL sends the whole old row only for tables with REPLICA IDENTITY FULL; otherwise `before`
holds just the key, and a mapping reading `before.status` (or `changed()` / `became()`, which read
both sides) would see nothing. So a table needs FULL exactly when some mapping of this source reads
a non-key `before` column — we do not know the key here, so any `before` read counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eventbus.mapping.discovery import discover
from eventbus.mapping.errors import MappingError
from eventbus.mapping.expression_language import ExpressionError
from eventbus.mapping.expressions import ExpressionCompiler
from eventbus.mapping.spec import load_mapping
from eventbus.mapping.tables import captured_table_path

# Only used when an expression does not compile (the mapping is broken): err on the side of FULL.
_BEFORE_REFERENCE = re.compile(r"\bbefore\s*[.\[]|\b(changed|became)\s*\(")


@dataclass(slots=True)
class BeforeImageNeeds:
    """Table (`schema.table`) → the mapping files that read its `before` image, plus unreadable files."""

    tables: dict[str, list[str]] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)  # "file: reason"
    mapped_tables: set[str] = field(default_factory=set)  # every table a mapping of this source reads
    # Tables of this source that mappings look rows up in → those mapping files: their staging topics
    # must keep every row's latest version (compaction), or a transformer started later misses rows.
    looked_up: dict[str, list[str]] = field(default_factory=dict)
    # Tables whose updates mappings publish from `after.*` → those mapping files: without REPLICA
    # IDENTITY FULL an update that leaves a large (TOASTed) column unchanged does not send it.
    update_readers: dict[str, list[str]] = field(default_factory=dict)
    # Table → the table descriptions (tables/<schema>.<table>.json) beside this source's mappings
    # that describe it: `source check` compares them with the live table (drift).
    descriptions: dict[str, set[str]] = field(default_factory=dict)

    def needs_full(self, table: str) -> bool:
        return table in self.tables


def before_image_needs(mappings_dir: Path, source: str) -> BeforeImageNeeds:
    """Scan `mappings_dir` recursively for mappings of `source` and what they read."""
    needs = BeforeImageNeeds()
    if not mappings_dir.is_dir():
        return needs
    for path in discover([mappings_dir]):
        try:
            # Shape only: a missing Avro schema must not hide that the mapping reads `before`.
            spec = load_mapping(path, check=False)
        except MappingError as error:
            needs.unreadable.append(error.one_line().splitlines()[0])
            continue
        for lookup in spec.lookup.values():
            if (lookup.connector or spec.source.connector) == source:
                needs.mapped_tables.add(lookup.table)
                needs.looked_up.setdefault(lookup.table, []).append(str(path))
                _add_description(needs, path, lookup.table)
        if spec.source.connector != source:
            continue
        needs.mapped_tables.add(spec.source.table)
        _add_description(needs, path, spec.source.table)
        expressions = _expressions(spec)
        if _reads_before(expressions):
            needs.tables.setdefault(spec.source.table, []).append(str(path))
        elif "u" in spec.op_codes and _reads_side(expressions, "after"):
            needs.update_readers.setdefault(spec.source.table, []).append(str(path))
    return needs


def _add_description(needs: BeforeImageNeeds, mapping: Path, table: str) -> None:
    description = captured_table_path(mapping, table)
    if description.exists():
        needs.descriptions.setdefault(table, set()).add(str(description))


def _expressions(spec: Any) -> list[str]:
    texts: list[str] = [key for lookup in spec.lookup.values() for key in lookup.key.values()]
    if isinstance(spec.when, str):
        texts.append(spec.when)
    for block in spec.emit:
        if block.when:
            texts.append(block.when)
        texts.extend(
            value for value in (*block.key.values(), *block.fields.values()) if isinstance(value, str)
        )
    return texts


def _reads_side(expressions: list[str], side: str) -> bool:
    compiler = ExpressionCompiler(None)
    for text in expressions:
        try:
            compiled = compiler.compile(text)
        except ExpressionError:
            continue
        if any(read_side == side for read_side, _ in compiled.reads):
            return True
    return False


def _reads_before(expressions: list[str]) -> bool:
    compiler = ExpressionCompiler(None)
    for text in expressions:
        try:
            compiled = compiler.compile(text)
        except ExpressionError:
            if _BEFORE_REFERENCE.search(text):
                return True
            continue
        if any(side == "before" for side, _ in compiled.reads):
            return True
    return False
