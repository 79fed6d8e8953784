"""YAML loading that remembers where every key and value was written.

ruamel.yaml's round-trip loader keeps line/column marks; we turn its output into plain Python values
(so pydantic sees ordinary dicts, lists and scalars) plus a `Locations` table from key path to
position. Duplicate keys, syntax errors, keys that are not text, merge keys (`<<`), tags other than
`!!str`, impossible dates and files that are not UTF-8 become `MappingError`s with their line.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.nodes import MappingNode, ScalarNode
from ruamel.yaml.scalarstring import (
    DoubleQuotedScalarString,
    FoldedScalarString,
    LiteralScalarString,
    SingleQuotedScalarString,
)

from eventbus.mapping.errors import MappingError, MappingErrors
from eventbus.mapping.text_files import read_utf8

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Position:
    """1-based line and column of a YAML node, and how a scalar was written (for expression offsets)."""

    line: int
    column: int
    style: str = "plain"  # plain | single | double | literal | folded


@dataclass(slots=True)
class Locations:
    """Key path → position of the key (for mappings) and of the value."""

    file: str
    text: str
    keys: dict[KeyPath, Position] = field(default_factory=dict)
    values: dict[KeyPath, Position] = field(default_factory=dict)

    def of_value(self, path: KeyPath) -> Position | None:
        """The value's position, else the key's, else the nearest ancestor's."""
        for length in range(len(path), -1, -1):
            prefix = path[:length]
            if prefix in self.values and length == len(path):
                return self.values[prefix]
            if prefix in self.keys:
                return self.keys[prefix]
            if prefix in self.values:
                return self.values[prefix]
        return None

    def of_key(self, path: KeyPath) -> Position | None:
        """The key's position (where an unknown or misplaced key was written), else `of_value`."""
        return self.keys.get(path) or self.of_value(path)

    def in_scalar(self, path: KeyPath, line_offset: int, column_offset: int) -> Position | None:
        """Where character (`line_offset`, `column_offset`) (1-based line, 0-based col) of a string
        scalar lies in the file, for every style: literal blocks keep their lines; folded blocks and
        plain or quoted scalars written over several lines join them with spaces, which is undone
        here by walking the scalar's lines in the file (exact unless a quoted scalar uses escapes)."""
        start = self.values.get(path)
        if start is None:
            return self.of_value(path)
        lines = self.text.splitlines()
        if start.style == "literal":
            first = start.line  # the content starts on the line after the `|` indicator
            indent = _block_indent(lines, first)
            return Position(first + line_offset, indent + column_offset + 1, start.style)
        if start.style == "folded":
            first = start.line  # 0-based index of the line after the `>` indicator
            indent = _block_indent(lines, first)
            pieces = ((number, indent) for number in range(first, len(lines)))
        else:
            opening = start.column - 1 + (0 if start.style == "plain" else 1)  # 0-based, after a quote
            pieces = (
                (number, opening if number == start.line - 1 else _indent_of(lines[number]))
                for number in range(start.line - 1, len(lines))
            )
        return _position_in_pieces(lines, pieces, line_offset, column_offset, start)


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _block_indent(lines: list[str], first: int) -> int:
    for candidate in lines[first:]:
        if candidate.strip():
            return _indent_of(candidate)
    return 0


def _position_in_pieces(
    lines: list[str], pieces: Any, line_offset: int, column_offset: int, start: Position
) -> Position:
    """Walk a folded scalar's pieces (file line, where its content starts): a piece adds its text and
    one joining character to the value, a space, or a line break where a blank line was folded."""
    value_line, value_column = 1, 0
    for number, begin in pieces:
        text = lines[number][begin:].rstrip()
        if not text.strip():  # a blank line folds into a line break of the value
            value_line, value_column = value_line + 1, 0
            continue
        if value_line == line_offset and value_column <= column_offset <= value_column + len(text):
            return Position(number + 1, begin + column_offset - value_column + 1, start.style)
        if value_line > line_offset:
            break
        value_column += len(text) + 1
    return start


def _style(value: Any) -> str:
    if isinstance(value, DoubleQuotedScalarString):
        return "double"
    if isinstance(value, SingleQuotedScalarString):
        return "single"
    if isinstance(value, LiteralScalarString):
        return "literal"
    if isinstance(value, FoldedScalarString):
        return "folded"
    return "plain"


def _plain(value: Any) -> Any:
    """ruamel's scalar subclasses → built-in types (they carry formatting we don't want downstream)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dt.datetime):
        return dt.datetime(
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
            tzinfo=value.tzinfo,
        )
    return value


def _walk(node: Any, path: KeyPath, locations: Locations, problems: list[MappingError]) -> Any:
    if isinstance(node, CommentedMap):
        out: dict[Any, Any] = {}
        for key, value in node.items():
            child = (*path, str(key))
            key_line, key_col = node.lc.key(key)
            if not isinstance(key, str):
                problems.append(_key_not_text(key, key_line, key_col, locations))
            value_line, value_col = node.lc.value(key)
            if value is None and value_line > key_line:  # `key:` left empty: ruamel marks the next token
                value_line, value_col = key_line, key_col
            locations.keys[child] = Position(key_line + 1, key_col + 1)
            locations.values[child] = Position(value_line + 1, value_col + 1, _style(value))
            out[_plain(key)] = _walk(value, child, locations, problems)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for index, value in enumerate(node):
            child = (*path, index)
            line, col = node.lc.item(index)
            locations.values[child] = Position(line + 1, col + 1, _style(value))
            items.append(_walk(value, child, locations, problems))
        return items
    return _plain(node)


def _key_not_text(key: Any, line: int, column: int, locations: Locations) -> MappingError:
    # Every key of these files names something (a field, a column, a table): YAML reads some plain
    # words as other types (`1:` a number, `true:`, and under `%YAML 1.1` also `on:`/`yes:`, a
    # boolean; `~:` null), and the name the author meant would be lost as `str()` of that value.
    rest = locations.text.splitlines()[line][column:]
    end = re.search(r":(\s|$)", rest)  # the key's colon (a timestamp key has colons of its own)
    written = (rest[: end.start()] if end else rest).strip() or "(empty)"
    kind = describe_value(key)
    return MappingError(
        f"key {written} is not text: YAML reads it as {kind}",
        file=locations.file,
        line=line + 1,
        column=column + 1,
        hint=f'quote it: "{written}":',
    )


def describe_value(value: Any) -> str:
    """What YAML made of a plain value, for messages: `a number`, `a boolean`, `a date`, ..."""
    for types, name in (
        (type(None), "null"),
        (bool, "a boolean"),
        (int | float, "a number"),
        (dt.datetime, "a timestamp"),
        (dt.date, "a date"),
        (str, "text"),
        (dict, "a mapping"),
        (list | tuple, "a list"),
    ):
        if isinstance(value, types):
            return name
    return type(value).__name__


def first_content_line(text: str) -> int:
    """The 1-based line where a document's content starts (after comments, directives and `---`),
    1 for a file without any: where a document of the wrong kind is reported."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith(("#", "%", "---")):
            return number
    return 1


class _Refused(MarkedYAMLError):
    """A construct the loader refuses on purpose, at its node, with a hint."""

    def __init__(self, problem: str, mark: Any, hint: str | None = None) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.hint = hint


class _Constructor(RoundTripConstructor):
    """ruamel's round-trip constructor, refusing what would lose positions or raise unmarked."""

    def flatten_mapping(self, node: MappingNode) -> Any:
        # Merged keys have no line in the merging mapping (ruamel keeps them apart, without marks):
        # errors in them could not be placed, so `<<` is refused where it is written.
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _Refused(
                    "merge keys (<<) are not supported",
                    key_node.start_mark,
                    "write the keys out; an alias (*name) repeats a whole value",
                )
        return super().flatten_mapping(node)

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        # A value its tag cannot hold (`!!float x`) raises a bare ValueError in ruamel: place it.
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError) as error:
            raise _Refused(f"invalid value: {error}", node.start_mark) from None

    def construct_yaml_str(self, node: ScalarNode) -> Any:
        # ruamel keeps an explicit `!!str 010` as a TaggedScalar (to write the tag back): it is text.
        return str(self.construct_scalar(node)) if node.ctag.handle else super().construct_yaml_str(node)

    def construct_unknown(self, node: Any) -> Any:
        # A local or Python tag (`!env x`, `!!python/object:...`) would reach the models as ruamel's
        # tagged object (or, on a mapping, pass as a plain one with the tag silently dropped).
        raise _Refused(
            f"YAML tag {str(node.tag).replace('tag:yaml.org,2002:', '!!')} is not supported",
            node.start_mark,
            "remove the tag: these files hold plain mappings, lists, text, numbers, booleans and dates",
        )

    def construct_yaml_timestamp(self, node: ScalarNode, values: Any = None) -> Any:
        # An impossible date (2024-02-30) raises a bare ValueError in ruamel, without its line.
        try:
            return super().construct_yaml_timestamp(node, values)
        except ValueError as error:
            raise _Refused(
                f"{node.value} is not a valid date or timestamp ({error})", node.start_mark
            ) from None


# Registered by function, so the overrides are registered again (ruamel copies the table per class).
_Constructor.add_constructor("tag:yaml.org,2002:timestamp", _Constructor.construct_yaml_timestamp)
_Constructor.add_constructor("tag:yaml.org,2002:str", _Constructor.construct_yaml_str)
# Ordered maps have no line marks per key in ruamel (the walk over them crashed); sets and pairs
# become types no model takes. All three are refused at their tag like an unknown one.
for _tag in ("omap", "set", "pairs"):
    _Constructor.add_constructor(f"tag:yaml.org,2002:{_tag}", _Constructor.construct_unknown)
_Constructor.add_constructor(None, _Constructor.construct_unknown)


def load_yaml_text(text: str, file: str) -> tuple[Any, Locations]:
    """Parse YAML 1.2 text (so `on:` stays a string key, unlike YAML 1.1)."""
    yaml = YAML(typ="rt")
    yaml.Constructor = _Constructor
    yaml.preserve_quotes = True  # keeps quoting style, needed to place expression errors exactly
    yaml.allow_duplicate_keys = False
    locations = Locations(file=file, text=text)
    try:
        document = yaml.load(text)
    except DuplicateKeyError as error:
        mark = error.problem_mark
        key = _duplicate_key_name(error)
        first = _first_definition(text, key, mark.line, mark.column) if key and mark else None
        hint = f"first defined on line {first}" if first else None
        if key in ("True", "False", "None") and not first:
            # Two keys YAML read as the same boolean or null (`on:` and `yes:` under %YAML 1.1)
            hint = "YAML reads this key as a boolean or null, not text: quote the keys"
        raise MappingError(
            f"duplicate key {key!r}" if key else "duplicate key",
            file=file,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
            hint=hint,
        ) from None
    except _Refused as error:
        mark = error.problem_mark
        raise MappingError(
            error.problem or "",
            file=file,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
            hint=error.hint,
        ) from None
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = error.problem or error.context or "invalid YAML"
        raise MappingError(
            f"invalid YAML: {problem}",
            file=file,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from None
    except Exception as error:  # ruamel raises a few unmarked errors (e.g. bad tags, reader errors)
        raise MappingError(f"invalid YAML: {error}", file=file) from None
    problems: list[MappingError] = []
    data = _walk(document, (), locations, problems)
    if problems:
        raise MappingErrors(problems)
    return data, locations


def _duplicate_key_name(error: DuplicateKeyError) -> str | None:
    # The problem text reads 'found duplicate key "a" with value ...'; the key is between quotes.
    problem = error.problem or ""
    if '"' in problem:
        return problem.split('"')[1]
    return None


def _first_definition(text: str, key: str, line: int, column: int) -> int | None:
    # ruamel's context mark points at the start of the mapping, not at the first occurrence of the key
    for number, candidate in enumerate(text.splitlines()[:line], start=1):
        stripped = candidate[column:] if len(candidate) > column else ""
        if candidate[:column].strip(" -") == "" and stripped.startswith(
            (f"{key}:", f'"{key}":', f"'{key}':")
        ):
            return number
    return None


def load_yaml_file(path: str | Path) -> tuple[Any, Locations]:
    """Read and parse one YAML file; unreadable files are `MappingError`s too."""
    return load_yaml_text(read_utf8(path), str(path))
