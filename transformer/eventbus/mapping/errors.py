"""Errors of the mapping package.

One error, two renderings (as in Redpanda Connect): `str(error)` is the one-line form for logs and
editors (`file:line:col: key.path: message`), `error.render(source_text)` adds a numbered excerpt
with a caret for humans (as dbt does for YAML errors).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from eventbus.errors import NO_VALUE, EventBusError, ValueApart, quote


class MappingError(EventBusError):
    """A mapping file is invalid. Lines and columns are 1-based; either may be unknown (None)."""

    exit_code = 1  # "a check failed": the tool worked, the user's file did not pass

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        column: int | None = None,
        key_path: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.column = column
        self.key_path = key_path
        self.hint = hint
        super().__init__(self.one_line())

    @property
    def location(self) -> str:
        """`file:line:col` with the parts that are known."""
        parts = [self.file or "<mapping>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def one_line(self) -> str:
        text = f"{self.location}: "
        if self.key_path:
            text += f"{self.key_path}: "
        text += self.message
        if self.hint:
            text += f" (hint: {self.hint})"
        return text

    def __str__(self) -> str:
        return self.one_line()

    def render(self, source_text: str | None = None, *, context: int = 2) -> str:
        """The one-line form followed by the surrounding lines of the file and a caret under the column."""
        text = self.one_line()
        if source_text is None and self.file:
            try:
                source_text = Path(self.file).read_text(encoding="utf-8", errors="replace")
            except OSError:
                source_text = None
        if source_text is None or self.line is None:
            return text
        lines = source_text.splitlines()
        if not 1 <= self.line <= len(lines):
            return text
        first = max(1, self.line - context)
        last = min(len(lines), self.line + context)
        width = len(str(last))
        excerpt = []
        for number in range(first, last + 1):
            marker = ">" if number == self.line else " "
            excerpt.append(f" {marker} {number:>{width}} | {lines[number - 1]}")
            if number == self.line and self.column is not None:
                excerpt.append(f"   {' ' * width} | {' ' * (self.column - 1)}^")
        return text + "\n" + "\n".join(excerpt)


class MappingErrors(MappingError):
    """Several errors found in one pass, so that the user can fix them all at once."""

    def __init__(self, errors: Sequence[MappingError]) -> None:
        if not errors:
            raise ValueError("MappingErrors needs at least one error")
        self.errors = sorted(errors, key=lambda e: (e.file or "", e.line or 0, e.column or 0))
        first = self.errors[0]
        super().__init__(
            first.message,
            file=first.file,
            line=first.line,
            column=first.column,
            key_path=first.key_path,
            hint=first.hint,
        )

    def one_line(self) -> str:
        return "\n".join(error.one_line() for error in self.errors)

    def render(self, source_text: str | None = None, *, context: int = 2) -> str:
        return "\n\n".join(error.render(source_text, context=context) for error in self.errors)

    @classmethod
    def collect(cls, errors: Iterable[MappingError]) -> MappingErrors | None:
        """Flatten nested collections; None when there is nothing to report."""
        flat: list[MappingError] = []
        for error in errors:
            flat.extend(error.errors if isinstance(error, MappingErrors) else [error])
        return cls(flat) if flat else None


class MappingEvaluationError(ValueApart, EventBusError):
    """A compiled mapping failed on one change. The service dead-letters the record with `str(self)`.

    `reason` names the field, column, type and rule, never a value (`eventbus.mapping.reasons`
    builds it). `value` is the value that failed; `detail` is what only a reader cleared for the
    record's data may see (`with_data()`, used by the mapping author's offline tools): the value, or
    the message of an unexpected Python exception, which may quote one. `public`: the mapping's
    `sensitivity` makes the value public, so `str(self)`, the dead-letter reason, shows it too.
    """

    exit_code = 1

    def __init__(
        self,
        reason: str,
        *,
        mapping: str,
        mapping_version: int | None = None,
        emit_index: int | None = None,
        field: str | None = None,
        value: Any = NO_VALUE,
        public: bool = False,
        detail: str | None = None,
    ) -> None:
        self.reason = reason
        self.mapping = mapping
        self.mapping_version = mapping_version
        self.emit_index = emit_index
        self.field = field
        self.value = value
        if detail is None and value is not NO_VALUE:
            detail = f"value: {quote(value)}"
        self.detail = detail
        self.public = public and detail is not None
        where = f"mapping {mapping}"
        if mapping_version is not None:
            where += f" v{mapping_version}"
        if emit_index is not None:
            where += f", emit[{emit_index}]"
        if field is not None:
            where += f", {field}"
        shown = f" ({self.detail})" if self.public else ""
        super().__init__(f"{where}: {reason}{shown}")

    def with_data(self) -> str:
        return f"{self} ({self.detail})" if self.detail and not self.public else str(self)


class MappingBindError(MappingEvaluationError):
    """A mapping cannot run against a table version (a column it reads is gone, another table)."""


class LookupPending(Exception):  # control flow, not an error
    """A lookup's related row does not exist as of the change yet and the change may still wait.

    Raised by the lookup resolver through a mapping function; the service parks the record and runs
    it again when the related table's stream has moved on (`eventbus.lookups`).
    """

    def __init__(self, lookup: str, table: str) -> None:
        super().__init__(f"lookup {lookup}: no row of {table} yet, waiting")
        self.lookup = lookup
        self.table = table
