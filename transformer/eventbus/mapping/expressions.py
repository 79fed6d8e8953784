"""The mapping expression language's compiler: a small, null-safe subset of Python expression syntax.

An expression is parsed with `ast.parse(mode="eval")`, checked against a whitelist of node types,
and translated ONCE into Python source text that reads pre-converted column values from local
variables. Nothing is interpreted per change, and nothing outside the whitelist can even be
written: no attribute access except `before.col` / `after.col` / `source.field`, no subscripts
except `after['odd col']`, only the functions of `function_catalog.FUNCTIONS`. What may be named
and what is refused: `expression_language.py`; how function calls are compiled:
`expression_calls.py`; the helpers the generated code calls, and `evaluate`: `expression_runtime.py`.

Null semantics (documented in mappings/README.md):
- arithmetic and functions with a null argument give null;
- comparisons with null are false, except `x == None` / `x != None` / `is_null(x)`;
- the TOAST placeholder UNAVAILABLE behaves like an unknown value: comparisons are false, functions
  propagate it, `changed()` treats it as unchanged, and emitting it is an evaluation error.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from keyword import kwlist as PYTHON_KEYWORDS
from typing import Any, Final

from eventbus.mapping.comparisons import ComparisonRefused, comparison_code
from eventbus.mapping.expression_calls import CallCompiler
from eventbus.mapping.expression_language import (
    FORBIDDEN_CALLS,
    LITERAL_NAMES,
    MAX_EXPRESSION_CHARS,
    MAX_NODES,
    NODE_WORDS,
    ROW_NAMES,
    SOURCE_FIELDS,
    SOURCE_KINDS,
    CompiledExpression,
    CompiledOperand,
    ExpressionError,
    Symbols,
    did_you_mean,
    parse_expression,
    refuse_comment,
)
from eventbus.mapping.function_catalog import FUNCTIONS
from eventbus.mapping.operand_kinds import (
    arithmetic_kind,
    arithmetic_refusal,
    column_zoned,
    kind_of_value,
    numbers_kind,
)
from eventbus.mapping.tables import ColumnInfo

_ARITH_HELPERS: Final = {
    ast.Add: "_add", ast.Sub: "_sub", ast.Mult: "_mul", ast.Div: "_div", ast.FloorDiv: "_floordiv",
    ast.Mod: "_mod",
}  # fmt: skip
_ARITH_SYMBOLS: Final = {"_add": "+", "_sub": "-", "_mul": "*", "_div": "/", "_floordiv": "//", "_mod": "%"}


class ExpressionCompiler(CallCompiler):
    """Compiles the expressions of one mapping, sharing a `Symbols` table between them."""

    def __init__(
        self,
        columns: Mapping[str, ColumnInfo] | None = None,
        symbols: Symbols | None = None,
        lookups: Mapping[str, Mapping[str, ColumnInfo] | None] | None = None,
    ):
        self.columns = columns
        self.symbols = symbols or Symbols()
        # Looked-up rows, by lookup name → their columns (None: not known, any column is accepted).
        # Set per expression by the analysis: a lookup's key may only use the lookups before it.
        self.lookups: Mapping[str, Mapping[str, ColumnInfo] | None] = lookups or {}

    def compile(self, text: str) -> CompiledExpression:
        if len(text) > MAX_EXPRESSION_CHARS:
            raise ExpressionError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
        if not text.strip():
            raise ExpressionError("empty expression")
        if "#" in text:
            refuse_comment(text)
        try:
            tree = parse_expression(text)
        except SyntaxError as error:
            hint = None
            keyword_column = re.search(rf"\b(\w+)\.({'|'.join(PYTHON_KEYWORDS)})\b", text)
            if error.msg and "invalid syntax" in error.msg and re.search(r"\b(import|lambda)\b", text):
                hint = "statements and lambdas are not expressions of the mapping language"
            elif keyword_column is not None:
                row, name = keyword_column.groups()
                hint = f"{name!r} is a Python keyword: read the column as {row}['{name}']"
            raise ExpressionError(
                f"syntax error: {error.msg}", error.lineno or 1, max((error.offset or 1) - 1, 0), hint
            ) from None
        except (RecursionError, MemoryError, ValueError) as error:
            raise ExpressionError(f"expression cannot be parsed: {type(error).__name__}") from None
        if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
            raise ExpressionError(f"expression too complex (more than {MAX_NODES} syntax nodes)")
        self._text_lines = text.strip("\n").splitlines()
        self._reads: set[tuple[str, str]] = set()
        self._source_fields: set[str] = set()
        out = self._node(tree.body)
        return CompiledExpression(
            text=text,
            source=out.code,
            reads=frozenset(self._reads),
            source_fields=frozenset(self._source_fields),
            kind=out.kind,
            constant=out.literal,
            value=out.value,
            column=out.column,
        )

    def literal(self, value: Any) -> CompiledExpression:
        """A YAML scalar written as a field value (`fields: {count: 1}`): a constant."""
        out = self._constant(value, None)
        return CompiledExpression(str(value), out.code, frozenset(), frozenset(), out.kind, True, value)

    # --- errors -------------------------------------------------------------------------------

    def _error(self, node: ast.AST, message: str, hint: str | None = None) -> ExpressionError:
        line = getattr(node, "lineno", 1)
        offset = getattr(node, "col_offset", 0)
        # ast offsets count UTF-8 bytes; editors count characters
        if 1 <= line <= len(self._text_lines):
            offset = len(self._text_lines[line - 1].encode("utf-8")[:offset].decode("utf-8", "ignore"))
        return ExpressionError(message, line, offset, hint)

    # --- nodes --------------------------------------------------------------------------------

    def _node(self, node: ast.AST) -> CompiledOperand:
        method = getattr(self, f"_n_{type(node).__name__}", None)
        if method is None:
            message = NODE_WORDS.get(type(node)) or f"{type(node).__name__} is not allowed in an expression"
            raise self._error(node, message)
        result: CompiledOperand = method(node)
        return result

    def _constant(self, value: Any, node: ast.AST | None) -> CompiledOperand:
        if value is None or isinstance(value, bool | int | float | str):
            if isinstance(value, float) and value != value:
                raise self._error(node or ast.Constant(value), "NaN literals are not allowed")
            kind = kind_of_value(value)
            if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) > 2**63:
                raise self._error(node or ast.Constant(value), "number literal out of range")
            return CompiledOperand(repr(value), kind, simple=True, literal=True, value=value)
        what = type(value).__name__
        raise self._error(node or ast.Constant(value), f"{what} literals are not allowed")

    def _n_Constant(self, node: ast.Constant) -> CompiledOperand:
        return self._constant(node.value, node)

    def _n_List(self, node: ast.List | ast.Tuple) -> CompiledOperand:
        items = [self._node(element) for element in node.elts]
        if all(item.literal for item in items):
            value = tuple(item.value for item in items)
            return CompiledOperand(
                self.symbols.constant(value), "array", simple=True, literal=True, value=value
            )
        # a list display, not a tuple: equal to the lists Debezium's arrays are decoded to
        return CompiledOperand("[" + ", ".join(item.code for item in items) + "]", "array")

    _n_Tuple = _n_List

    def _n_Name(self, node: ast.Name) -> CompiledOperand:
        if node.id in LITERAL_NAMES:
            return self._constant(LITERAL_NAMES[node.id], node)
        if node.id == "op":
            return CompiledOperand("_op", "string", simple=True)
        if node.id in ROW_NAMES or node.id in self.lookups:
            raise self._error(
                node,
                f"'{node.id}' is a whole row",
                hint=f"read a column: {node.id}.<column>, or is_null({node.id})",
            )
        if node.id == "source":
            raise self._error(
                node, "'source' is a record", hint=f"read a field: source.<{'|'.join(SOURCE_FIELDS)}>"
            )
        hint = did_you_mean(node.id, [*ROW_NAMES, "op", "source", "true", "false", "null"])
        if self.columns is not None and node.id in self.columns:
            hint = f"did you mean after.{node.id}?"
        elif self.columns is None and hint is None:
            hint = f"columns are read as after.{node.id} or before.{node.id}, text is quoted: '{node.id}'"
        elif hint is None:  # most often a text value written without its quotes
            hint = f"text is quoted inside the expression: \"'{node.id}'\""
        if node.id in FUNCTIONS or node.id in FORBIDDEN_CALLS or node.id.startswith("__"):
            raise self._error(node, f"name {node.id!r} is not allowed here")
        raise self._error(node, f"unknown name {node.id!r}", hint)

    def _column(self, node: ast.AST, side: str, column: str) -> CompiledOperand:
        columns = self.columns if side in ROW_NAMES else self.lookups[side]
        if columns is not None and column not in columns:
            raise self._error(
                node, f"unknown column {column!r} of {side}", did_you_mean(column, columns.keys())
            )
        self._reads.add((side, column))
        info = columns.get(column) if columns is not None else None
        return CompiledOperand(
            self.symbols.column(side, column),
            info.kind if info else None,
            simple=True,
            column=info,  # a looked-up column's too (nullable when its lookup is `on_missing: null`)
            zoned=column_zoned(info) if info else None,
        )

    def _is_row(self, name: str) -> bool:
        return name in ROW_NAMES or name in self.lookups

    def _n_Attribute(self, node: ast.Attribute) -> CompiledOperand:
        if node.attr.startswith("_"):
            raise self._error(
                node, f"access to attribute {node.attr!r} is not allowed (no private or dunder names)"
            )
        if not isinstance(node.value, ast.Name) or not (
            self._is_row(node.value.id) or node.value.id == "source"
        ):
            names = ", ".join((*ROW_NAMES, *self.lookups))
            raise self._error(node, f"attribute access is only allowed on {names} and source")
        if node.value.id == "source":
            if node.attr not in SOURCE_FIELDS:
                raise self._error(
                    node, f"unknown source field {node.attr!r}", did_you_mean(node.attr, SOURCE_FIELDS)
                )
            self._source_fields.add(node.attr)
            return CompiledOperand(f"_s_{node.attr}", SOURCE_KINDS.get(node.attr, "string"), simple=True)
        return self._column(node, node.value.id, node.attr)

    def _n_Subscript(self, node: ast.Subscript) -> CompiledOperand:
        # after['odd column'] reads columns whose names are not Python identifiers (or are keywords)
        if (
            isinstance(node.value, ast.Name)
            and self._is_row(node.value.id)
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
        ):
            if node.slice.value.startswith("__"):
                raise self._error(node, "dunder names are not allowed")
            return self._column(node, node.value.id, node.slice.value)
        raise self._error(node, "subscripts are only allowed as before['column'] or after['column']")

    def _n_BoolOp(self, node: ast.BoolOp) -> CompiledOperand:
        word = " and " if isinstance(node.op, ast.And) else " or "
        parts = [self._node(value).code for value in node.values]
        # Always a boolean, so `a and b` in a field gives true/false, not one of its operands
        return CompiledOperand(f"(True if ({word.join(parts)}) else False)", "bool")

    def _n_UnaryOp(self, node: ast.UnaryOp) -> CompiledOperand:
        operand = self._node(node.operand)
        if isinstance(node.op, ast.Not):
            return CompiledOperand(f"(not {operand.code})", "bool")
        if isinstance(node.op, ast.USub):
            if (
                operand.literal
                and isinstance(operand.value, int | float)
                and not isinstance(operand.value, bool)
            ):
                return self._constant(-operand.value, node)
            self._refuse(node, arithmetic_refusal("-", operand, operand))
            return CompiledOperand(f"_neg({operand.code})", operand.kind)
        if isinstance(node.op, ast.UAdd):
            self._refuse(node, arithmetic_refusal("+", operand, operand))
            return CompiledOperand(f"_pos({operand.code})", operand.kind)
        raise self._error(node, "bitwise operators are not allowed")

    def _n_BinOp(self, node: ast.BinOp) -> CompiledOperand:
        helper = _ARITH_HELPERS.get(type(node.op))
        if helper is None:
            what = "exponentiation (**)" if isinstance(node.op, ast.Pow) else "bitwise and matrix operators"
            raise self._error(node, f"{what} is not allowed")
        left, right = self._node(node.left), self._node(node.right)
        if helper in ("_mod", "_mul") and (left.kind == "string" or right.kind == "string"):
            # '%s' % x is string formatting and 'a' * n repetition: neither belongs in a mapping
            raise self._error(node, f"'{'%' if helper == '_mod' else '*'}' needs numbers, not text")
        symbol = _ARITH_SYMBOLS[helper]
        self._refuse(node, arithmetic_refusal(symbol, left, right))
        return CompiledOperand(f"{helper}({left.code}, {right.code})", arithmetic_kind(symbol, left, right))

    def _n_IfExp(self, node: ast.IfExp) -> CompiledOperand:
        test, body, orelse = self._node(node.test), self._node(node.body), self._node(node.orelse)
        kind = body.kind if body.kind == orelse.kind or (orelse.kind is None and orelse.literal) else None
        kind = numbers_kind((body, orelse)) if kind is None else kind  # an int or a decimal: either
        zoned = body.zoned if kind is not None and body.zoned == orelse.zoned else None
        return CompiledOperand(f"({body.code} if {test.code} else {orelse.code})", kind, zoned=zoned)

    def _n_Compare(self, node: ast.Compare) -> CompiledOperand:
        parts = []
        left_node, left = node.left, self._node(node.left)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = self._node(right_node)
            parts.append(self._compare(node, op, left_node, left, right_node, right))
            left_node, left = right_node, right
        code = parts[0] if len(parts) == 1 else "(" + " and ".join(parts) + ")"
        return CompiledOperand(code, "bool")

    def _compare(
        self,
        node: ast.AST,
        op: ast.cmpop,
        ln: ast.AST,
        left: CompiledOperand,
        rn: ast.AST,
        right: CompiledOperand,
    ) -> str:
        try:
            return comparison_code(op, left, right, self.symbols.constant)
        except ComparisonRefused as refused:
            raise self._error(rn if refused.at_right else node, str(refused), refused.hint) from None
