"""The mapping expression language's definition, apart from its compiler (`expressions.py`).

What an expression may name (the rows, the source fields and their kinds, the literal words), what
it may not (refused calls and syntax, with the words that say so, and the size limits), the error
a refusal raises, and what compiling gives back: a `CompiledExpression`, reading locals named by the
`Symbols` a mapping's expressions share. The analysis, the type checks, the dead-letter reasons and
the mapping compiler read compiled expressions through these names, without the compiler itself.
"""

from __future__ import annotations

import ast
import difflib
import io
import tokenize
from dataclasses import dataclass, field
from typing import Any, Final

from eventbus.mapping.tables import ColumnInfo

MAX_EXPRESSION_CHARS: Final = 4000
MAX_NODES: Final = 400

ROW_NAMES: Final = ("before", "after")
SOURCE_FIELDS: Final = ("connector", "db", "schema", "table", "ts_ms", "lsn", "tx_id", "snapshot", "sequence")
SOURCE_KINDS: Final = {"ts_ms": "int", "lsn": "int", "tx_id": "int"}
LITERAL_NAMES: Final = {
    "true": True,
    "false": False,
    "null": None,
    "True": True,
    "False": False,
    "None": None,
}
FORBIDDEN_CALLS: Final = frozenset(
    {"getattr", "setattr", "delattr", "hasattr", "eval", "exec", "compile", "open", "globals", "locals",
     "vars", "dir", "type", "object", "__import__", "import", "input", "print", "breakpoint", "help",
     "memoryview", "super", "classmethod", "staticmethod", "property", "id", "exit", "quit"}
)  # fmt: skip

NODE_WORDS: Final = {
    ast.Lambda: "lambdas are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "generator expressions are not allowed",
    ast.JoinedStr: "f-strings are not allowed; use concat()",
    ast.FormattedValue: "f-strings are not allowed; use concat()",
    ast.NamedExpr: "assignment expressions (:=) are not allowed",
    ast.Starred: "starred arguments (*x) are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
    ast.Dict: "dict literals are not allowed",
    ast.Set: "set literals are not allowed; use a list: x in [1, 2]",
    ast.Slice: "slices are not allowed; use substr()",
}


class ExpressionError(Exception):
    """A rejected expression; `line` (1-based) and `column` (0-based) are within the expression text."""

    def __init__(self, message: str, line: int = 1, column: int = 0, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.hint = hint


def parse_expression(text: str) -> ast.Expression:
    """The syntax tree of an expression as written in a mapping. One written over several lines
    (a YAML literal block `|` keeps its line breaks) is read as if in parentheses, as Python reads a
    bracketed expression; line and column numbers stay those of `text`. Raises `SyntaxError`."""
    text = text.strip("\n")
    if "\n" not in text:
        return ast.parse(text, mode="eval")
    try:
        tree = ast.parse(f"(\n{text}\n)", mode="eval")
    except SyntaxError as error:
        if error.lineno == 1:  # our own bracket: one of the text's is not closed
            error.lineno, error.offset = _unclosed_bracket(text)
        elif error.lineno is not None:
            error.lineno = min(error.lineno - 1, text.count("\n") + 1)
        raise
    return ast.increment_lineno(tree, -1)


def refuse_comment(text: str) -> None:
    """Python reads `#` outside quotes as a comment to the end of the line: in a folded YAML block
    (`when: >`), whose lines are joined into one, that silently dropped the rest of the expression."""
    lines = text.strip("\n")
    try:  # bracketed as `parse_expression` reads it: no indentation rules across lines
        for token in tokenize.generate_tokens(io.StringIO(f"(\n{lines}\n)").readline):
            if token.type == tokenize.COMMENT:
                line, column = token.start
                raise ExpressionError(
                    "'#' is not part of the expression language: what follows it would be ignored",
                    line - 1,
                    column,
                    "YAML comments cannot be inside a folded (`>`) or literal (`|`) block, all of its "
                    "lines are the expression: put the comment on a separate line outside the block "
                    "(a '#' in text is quoted: '#1')",
                )
    except (tokenize.TokenError, SyntaxError):
        return  # unterminated text or brackets: parsing says so, at the right place


def _unclosed_bracket(text: str) -> tuple[int, int]:
    """(line, 1-based column) of the first bracket of `text` never closed (strings skipped)."""
    open_at: list[tuple[int, int]] = []
    quote = None
    for number, line in enumerate(text.split("\n"), 1):
        for column, char in enumerate(line, 1):
            if quote is not None:
                quote = None if char == quote else quote
            elif char in "'\"":
                quote = char
            elif char in "([{":
                open_at.append((number, column))
            elif char in ")]}" and open_at:
                open_at.pop()
    return open_at[0] if open_at else (1, 1)


def did_you_mean(word: str, candidates: list[str] | tuple[str, ...] | Any) -> str | None:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


@dataclass(slots=True)
class Symbols:
    """Names shared by every expression of one mapping: column locals and load-time constants."""

    columns: dict[tuple[str, str], str] = field(default_factory=dict)  # (side, column) -> local name
    constants: dict[str, Any] = field(default_factory=dict)
    # The rows some expression tests for absence (`is_null(before)`): the mapping handles a change
    # without that row itself, so the compiler does not dead-letter an update lacking its old row.
    null_tested_rows: set[str] = field(default_factory=set)
    _constant_ids: dict[Any, str] = field(default_factory=dict)

    def column(self, side: str, name: str) -> str:
        key = (side, name)
        if key not in self.columns:
            self.columns[key] = f"{side[0]}_{len(self.columns)}"
        return self.columns[key]

    def constant(self, value: Any) -> str:
        try:
            marker: Any = (type(value), value)
            hash(marker)
        except TypeError:
            marker = id(value)
        if marker not in self._constant_ids:
            name = f"_K{len(self.constants)}"
            self.constants[name] = value
            self._constant_ids[marker] = name
        return self._constant_ids[marker]


@dataclass(frozen=True, slots=True)
class CompiledExpression:
    """One expression translated to Python source, with what it reads."""

    text: str
    source: str
    reads: frozenset[tuple[str, str]]  # (side, column), side in before/after
    source_fields: frozenset[str]
    kind: str | None  # static result kind when known (string, int, decimal, bool, date, ...)
    constant: bool = False  # a literal: no runtime reads at all
    value: Any = None  # the literal's value when `constant`
    # The column when the expression is just `after.x` / `before.x` (its type, scale and nullability
    # are then the expression's), else None
    column: ColumnInfo | None = None


@dataclass(slots=True)
class CompiledOperand:
    """One compiled sub-expression: its Python code and what is known of its value."""

    code: str
    kind: str | None = None
    simple: bool = False  # a local name or a literal: safe to repeat without re-evaluating anything
    literal: bool = False
    value: Any = None
    column: ColumnInfo | None = None  # a plain read of this row column
    zoned: bool | None = None  # a timestamp or time with a time zone, or wall-clock (None: not known)


def lookup_row_local(name: str) -> str:
    """The generated code's local that holds the row a lookup found (None: no row)."""
    return f"_r_{name}"
