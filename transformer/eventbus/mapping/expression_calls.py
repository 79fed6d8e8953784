"""The calls of a mapping expression: how `ExpressionCompiler` (`expressions.py`) compiles `f(...)`.

A call is checked against the function's entry in `function_catalog.FUNCTIONS` (name, arity,
keywords, the kinds its arguments take) and becomes `_f_<name>(...)`; the functions that read
columns rather than values (`changed`, `became`, `is_null` of a row), take a literal that is
compiled once (`matches`' regular expression, `mask`'s `keep`) or the mapping's salt (`hash`) are
compiled by a `_call_<name>` method of their own, and `coalesce` of locals and literals inline.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from eventbus.mapping.comparisons import became_code
from eventbus.mapping.expression_language import (
    FORBIDDEN_CALLS,
    NODE_WORDS,
    ROW_NAMES,
    CompiledOperand,
    ExpressionError,
    Symbols,
    did_you_mean,
    lookup_row_local,
)
from eventbus.mapping.function_catalog import FUNCTIONS, NON_DETERMINISTIC, Function
from eventbus.mapping.operand_kinds import (
    COMPOUND,
    NUMBERS,
    KindRefused,
    a_kind,
    argument_refusal,
    comparison_refusal,
    first_refusal,
    label_refusal,
    numbers_kind,
)
from eventbus.mapping.tables import ColumnInfo


class CallCompiler:
    """The half of `ExpressionCompiler` that compiles function calls (a mixin: it compiles their
    arguments, and reports errors, with the compiler's own methods)."""

    symbols: Symbols
    lookups: Mapping[str, Mapping[str, ColumnInfo] | None]
    _reads: set[tuple[str, str]]

    if TYPE_CHECKING:  # `ExpressionCompiler`'s

        def _node(self, node: ast.AST) -> CompiledOperand: ...

        def _column(self, node: ast.AST, side: str, column: str) -> CompiledOperand: ...

        def _error(self, node: ast.AST, message: str, hint: str | None = None) -> ExpressionError: ...

    def _n_Call(self, node: ast.Call) -> CompiledOperand:
        if not isinstance(node.func, ast.Name):
            if isinstance(node.func, ast.Attribute) and node.func.attr.startswith("_"):
                raise self._error(node.func, f"access to attribute {node.func.attr!r} is not allowed")
            if not isinstance(node.func, ast.Attribute):
                self._node(node.func)  # reports lambdas, subscripts... by their own names
            raise self._error(node, "only functions of the mapping language can be called (no methods)")
        name = node.func.id
        if name in NON_DETERMINISTIC:
            raise self._error(node, f"function {name}() is not allowed", NON_DETERMINISTIC[name])
        if name in FORBIDDEN_CALLS or name.startswith("_"):
            raise self._error(node, f"calling {name}() is not allowed")
        spec = FUNCTIONS.get(name)
        if spec is None:
            raise self._error(node, f"unknown function {name}()", did_you_mean(name, FUNCTIONS.keys()))
        for argument in node.args:
            if isinstance(argument, ast.Starred):
                raise self._error(argument, NODE_WORDS[ast.Starred])
        for keyword in node.keywords:
            if keyword.arg is None:
                raise self._error(node, "**keyword arguments are not allowed")
            if keyword.arg not in spec.keywords:
                raise self._error(
                    node,
                    f"{name}() takes no keyword argument {keyword.arg!r}",
                    f"signature: {spec.signature}",
                )
        count = len(node.args)
        if count < spec.min_args or (spec.max_args is not None and count > spec.max_args):
            raise self._error(
                node,
                f"{name}() takes {_arity(spec)} argument(s), got {count}",
                f"signature: {spec.signature}",
            )
        special = getattr(self, f"_call_{name}", None)
        if special is not None:
            result: CompiledOperand = special(node)
            return result
        args = [self._node(argument) for argument in node.args]
        self._check_arguments(spec, node.args, args)
        kind, zoned = spec.returns, True if name == "datetime" else None  # datetime() gives UTC
        if name in ("coalesce", "min", "max"):
            position = first_refusal(name != "coalesce", args)
            if position is not None:
                self._refuse(node.args[position[0]], position[1])
            first = next((a for a in args if a.kind is not None), None)
            kind, zoned = (first.kind, first.zoned) if first is not None else (None, None)
            kind = numbers_kind(args) if kind in NUMBERS else kind  # min(1, 0.5) is a float
        if name == "coalesce":
            inline = self._inline_coalesce(node.args, args)
            if inline is not None:
                return CompiledOperand(inline, kind, zoned=zoned)
        elif name == "round" and len(args) == 1:
            kind = "int"  # as `round_` gives: an integer, of a float or a decimal too
        elif name in ("abs", "round"):
            kind = args[0].kind
        return CompiledOperand(f"_f_{name}({', '.join(a.code for a in args)})", kind, zoned=zoned)

    def _check_arguments(self, spec: Function, nodes: list[ast.expr], args: list[CompiledOperand]) -> None:
        """Refuses an argument `spec` can never take (a list to a text function, text to abs())."""
        for position, (argument, out) in enumerate(zip(nodes, args, strict=False)):
            if spec.name not in _TAKE_ANY_VALUE and out.kind in COMPOUND:
                raise self._error(
                    argument,
                    f"{spec.name}() takes a single value, and this is {a_kind(out.kind)}",
                    "publish it into an Avro array/map/record field as it is, or length(...) of a list",
                )
            refused = argument_refusal(spec.name, position, spec.accepts, out)
            if refused is not None:
                raise self._error(argument, str(refused), refused.hint or f"signature: {spec.signature}")

    def _refuse(self, node: ast.AST, refused: KindRefused | None) -> None:
        if refused is not None:
            raise self._error(node, str(refused), refused.hint)

    @staticmethod
    def _inline_coalesce(nodes: list[ast.expr], args: list[CompiledOperand]) -> str | None:
        """`coalesce` of locals and literals as a conditional expression (no call on the hot path,
        as in `coalesce(lookup.column, true)`); None when an argument is anything else."""
        code = "None"
        for node, out in reversed(list(zip(nodes, args, strict=True))):
            if isinstance(node, ast.Constant) or out.code in ("True", "False", "None"):
                if out.code != "None":  # a literal is never unavailable: what follows is not read
                    code = out.code
            elif out.code.isidentifier():
                code = f"({out.code} if {out.code} is not None and {out.code} is not _U else {code})"
            else:
                return None
        return code

    def _row_column(self, node: ast.AST, function: str) -> str:
        """The column named by `changed(after.x)` / `became(before.x, ...)`."""
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in ROW_NAMES
        ):
            return node.attr
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Name)
            and node.value.id in ROW_NAMES
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
        ):
            return node.slice.value
        raise self._error(node, f"{function}() takes a column: {function}(after.<column>...)")

    def _call_changed(self, node: ast.Call) -> CompiledOperand:
        column = self._row_column(node.args[0], "changed")
        a = self._column(node.args[0], "after", column).code
        b = self._column(node.args[0], "before", column).code
        # An unavailable after value means "TOAST, not sent because unchanged"
        return CompiledOperand(f"({a} is not _U and {a} != {b})", "bool")

    def _call_became(self, node: ast.Call) -> CompiledOperand:
        column = self._row_column(node.args[0], "became")
        after = self._column(node.args[0], "after", column)
        before = self._column(node.args[0], "before", column)
        value = self._node(node.args[1])
        read = self._node(node.args[0])
        self._refuse(node.args[1], comparison_refusal(False, read, value) or label_refusal(read, value))
        if value.literal:
            return CompiledOperand(became_code(after, before, value, self.symbols.constant), "bool")
        return CompiledOperand(f"_became({before.code}, {after.code}, {value.code})", "bool")

    def _call_matches(self, node: ast.Call) -> CompiledOperand:
        pattern = node.args[1]
        if not (isinstance(pattern, ast.Constant) and isinstance(pattern.value, str)):
            raise self._error(pattern, "matches() needs a literal regular expression", "write it in quotes")
        try:
            compiled = re.compile(pattern.value)
        except re.error as error:
            raise self._error(pattern, f"invalid regular expression: {error}") from None
        subject = self._node(node.args[0])
        self._check_arguments(FUNCTIONS["matches"], node.args[:1], [subject])
        return CompiledOperand(f"_f_matches({subject.code}, {self.symbols.constant(compiled)})", "bool")

    def _call_is_null(self, node: ast.Call) -> CompiledOperand:
        argument = node.args[0]
        if isinstance(argument, ast.Name) and argument.id in ROW_NAMES:
            self.symbols.null_tested_rows.add(argument.id)
            return CompiledOperand(f"(_{argument.id[0]} is None)", "bool")
        if isinstance(argument, ast.Name) and argument.id in self.lookups:
            # A lookup with `on_missing: null` that found no row: the whole related row is null
            self._reads.add((argument.id, ""))
            return CompiledOperand(f"({lookup_row_local(argument.id)} is None)", "bool")
        compiled = self._node(argument)
        if compiled.literal:  # `1 is None` would also warn from the generated code
            raise self._error(node, "is_null() of a literal is always true or always false")
        return CompiledOperand(f"({compiled.code} is None)", "bool")

    def _call_hash(self, node: ast.Call) -> CompiledOperand:
        value = self._node(node.args[0])
        self._check_arguments(FUNCTIONS["hash"], node.args, [value])
        return CompiledOperand(f"_f_hash({value.code}, _SALT)", "string")

    def _call_mask(self, node: ast.Call) -> CompiledOperand:
        keep = 4
        for keyword in node.keywords:
            value = keyword.value
            if isinstance(value, ast.UnaryOp) and isinstance(value.op, ast.USub):
                raise self._error(value, "mask() keep must be a non-negative integer literal")
            if not (isinstance(value, ast.Constant) and type(value.value) is int):
                raise self._error(value, "mask() keep must be an integer literal")
            keep = value.value
        subject = self._node(node.args[0])
        self._check_arguments(FUNCTIONS["mask"], node.args, [subject])
        return CompiledOperand(f"_f_mask({subject.code}, {keep!r})", "string")


# Functions that take a list, a map or a row as well as a single value; the others would fail on
# every change (`str(after.tags)`: "cannot turn list into text"), so `validate` says so.
_TAKE_ANY_VALUE: Final = frozenset(
    {"coalesce", "is_null", "is_unavailable", "is_infinite", "changed", "became", "length"}
)


def _arity(spec: Function) -> str:
    if spec.max_args is None:
        return f"at least {spec.min_args}"
    if spec.min_args == spec.max_args:
        return str(spec.min_args)
    return f"{spec.min_args} to {spec.max_args}"
