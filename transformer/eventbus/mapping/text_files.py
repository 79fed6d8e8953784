"""Text files of a mapping (the mapping, its tests, schemas, table descriptions, fixtures) are
UTF-8: one that is not is an error naming the first bad byte and its line, not a traceback or a
JSON parser's misplaced complaint. Light on imports: the Avro and table loaders use it too."""

from __future__ import annotations

from pathlib import Path

from eventbus.mapping.errors import MappingError


class NotUtf8(ValueError):
    """Bytes that are not UTF-8, with where the first bad byte is (1-based line and column)."""

    def __init__(self, byte: int, line: int, column: int) -> None:
        super().__init__(f"file is not UTF-8 (byte 0x{byte:02x} at line {line})")
        self.line = line
        self.column = column


def utf8_text(raw: bytes) -> str:
    """`raw` decoded; `NotUtf8` (a ValueError) names the first byte that is not (a Latin-1 export,
    a UTF-16 file), for the JSON files beside a mapping (schemas, table descriptions) too."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line_start = raw.rfind(b"\n", 0, error.start) + 1
        line = raw.count(b"\n", 0, error.start) + 1
        column = len(raw[line_start : error.start].decode("utf-8", "replace")) + 1
        raise NotUtf8(raw[error.start], line, column) from None


def read_utf8(path: str | Path) -> str:
    """A text file's content; unreadable files and files that are not UTF-8 are `MappingError`s,
    the latter placed at the first byte that is not."""
    try:
        return utf8_text(Path(path).read_bytes())
    except OSError as error:
        raise MappingError(f"cannot read file: {error.strerror or error}", file=path) from None
    except NotUtf8 as error:
        raise MappingError(
            str(error), file=path, line=error.line, column=error.column, hint="save it as UTF-8"
        ) from None
