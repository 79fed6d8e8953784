"""Personal data is published only hashed, masked or on purpose: what an expression publishes of it.

A field the mapping's `sensitivity` marks `pii` or `phi` loads only when its expression publishes no
source value as it is, or when it is listed in `allow_pii` (a reviewed exception). Judged on the
syntax tree (`publication`): the value must come out of `hash()` or `mask()`, possibly through
`coalesce` or a conditional whose every branch does; constants carry no source data, comparisons
and boolean operators publish only true/false.

`mask()` hides a value only when it masks the column itself and keeps few characters: it keeps the
*last* `keep` characters, so `mask(concat('X', after.ssn), keep=11)` publishes the whole number.
It protects when its argument is a column, or `str`/`trim`/`lower`/`upper` of one, and `keep` is at
most `MAX_MASK_KEEP`; any other `mask()` of a personal field is refused where it is written.

The catalog (`contracts.catalog`) and the cross-mapping checks of a topic (`contracts.collect`)
describe and compare fields with the same judgement (`protection`, `is_protected_expression`).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from eventbus.mapping.errors import MappingError
from eventbus.mapping.expression_language import LITERAL_NAMES, did_you_mean, parse_expression
from eventbus.mapping.spec import PERSONAL, MappingSpec

if TYPE_CHECKING:
    from eventbus.mapping.analysis import EmitPlan

MAX_MASK_KEEP: Final = 4  # an SSN's or a card's last four: what forms and receipts show
# Functions that give back their argument's characters (nearly) all: masking one of them still
# masks the column
_SAME_CHARACTERS: Final = frozenset({"str", "trim", "lower", "upper"})

# What a protected expression publishes, as the catalog names it
HASHED: Final = "hashed"
MASKED: Final = "masked"
NO_SOURCE_VALUE: Final = "no source value (constants, true/false, the schema default)"


@dataclass(slots=True)
class Publication:
    """What an expression publishes of the values it reads.

    `ways`: how each branch protects them (`HASHED`, `MASKED`, `NO_SOURCE_VALUE`), None when some
    branch publishes a value as it is. `refusals`: each `mask()` that does not protect, with where
    it is in the expression text (1-based line, 0-based character column) and why."""

    ways: frozenset[str] | None
    refusals: list[tuple[int, int, str]] = field(default_factory=list)

    @property
    def protected(self) -> bool:
        return self.ways is not None and not self.refusals


def publication(value: object) -> Publication:
    """How a field's expression (`value` as the mapping file gives it) publishes what it reads."""
    if not isinstance(value, str):
        return Publication(frozenset({NO_SOURCE_VALUE}))  # a YAML constant carries no source data
    try:
        tree = parse_expression(value)
    except SyntaxError:
        return Publication(frozenset({NO_SOURCE_VALUE}))  # reported by the expression compiler already
    lines = value.strip("\n").splitlines()
    refusals: list[tuple[int, int, str]] = []
    ways = _ways(tree.body, lines, refusals)
    return Publication(ways, refusals)


def is_protected_expression(value: object) -> bool:
    """Does the expression publish only hashes, masks or no source value at all?"""
    return publication(value).protected


def protection(spec: MappingSpec, name: str, value: object) -> str:
    """How one mapping publishes field `name` (its expression `value`; None: the schema's default),
    in the catalog's words: `hashed`, `masked`, `no source value (...)`, or `as is (...)`."""
    if value is None:
        return NO_SOURCE_VALUE
    found = publication(value)
    if not found.protected or found.ways is None:
        allowed = "allowed by allow_pii " if name in spec.allow_pii else ""
        return f"as is ({allowed}in {spec.file or spec.name})"
    return " and ".join(sorted(found.ways))


def _ways(node: ast.expr, lines: list[str], refusals: list[tuple[int, int, str]]) -> frozenset[str] | None:
    if isinstance(node, ast.Constant) or (isinstance(node, ast.Name) and node.id in LITERAL_NAMES):
        return frozenset({NO_SOURCE_VALUE})
    if isinstance(node, ast.Compare | ast.BoolOp) or (
        isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)
    ):
        return frozenset({NO_SOURCE_VALUE})  # true or false (the compiler makes `a or b` a boolean)
    if isinstance(node, ast.IfExp):
        return _all_of([node.body, node.orelse], lines, refusals)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name = node.func.id
        if name == "hash":
            return frozenset({HASHED})
        if name == "mask" and node.args:
            return _mask(node, lines, refusals)
        if name == "coalesce":
            return _all_of(node.args, lines, refusals)
    return None


def _all_of(
    nodes: list[ast.expr], lines: list[str], refusals: list[tuple[int, int, str]]
) -> frozenset[str] | None:
    """The ways of several branches, each of which may be what is published (None if one is plain)."""
    found = [_ways(node, lines, refusals) for node in nodes]
    if any(ways is None for ways in found):
        return None
    return frozenset().union(*(ways for ways in found if ways is not None))


def _mask(node: ast.Call, lines: list[str], refusals: list[tuple[int, int, str]]) -> frozenset[str] | None:
    argument = node.args[0]
    keep_node = next((k.value for k in node.keywords if k.arg == "keep"), None)
    keep = keep_node.value if isinstance(keep_node, ast.Constant) else MAX_MASK_KEEP
    if _is_column(argument):
        if isinstance(keep, int) and keep > MAX_MASK_KEEP and keep_node is not None:
            why = f"keep={keep} shows up to {keep} characters of it"
            refusals.append((*_position(keep_node, lines), why))
            return None
        return frozenset({MASKED})
    # A mask of something already protected (a hash, a constant) publishes no more than it does
    known = len(refusals)
    inner = _ways(argument, lines, refusals)
    if inner is not None:
        return frozenset({MASKED}) | inner
    if len(refusals) == known:  # else a mask inside it is refused already
        why = "it masks an expression, not the column itself, so the characters it keeps can be the column's"
        if isinstance(keep, int) and keep > MAX_MASK_KEEP:
            why += f"; keep={keep} shows up to {keep} characters"
        refusals.append((*_position(argument, lines), why))
    return None


def _is_column(node: ast.expr) -> bool:
    """`after.c`, `before['c']`, `lookup.c`, or `str`/`trim`/`lower`/`upper` of one."""
    if isinstance(node, ast.Attribute):
        return isinstance(node.value, ast.Name)
    if isinstance(node, ast.Subscript):
        return isinstance(node.value, ast.Name) and isinstance(node.slice, ast.Constant)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _SAME_CHARACTERS:
        return len(node.args) == 1 and not node.keywords and _is_column(node.args[0])
    return False


def _position(node: ast.AST, lines: list[str]) -> tuple[int, int]:
    line = getattr(node, "lineno", 1)
    offset = getattr(node, "col_offset", 0)
    if 1 <= line <= len(lines):  # ast offsets count UTF-8 bytes; editors count characters
        offset = len(lines[line - 1].encode("utf-8")[:offset].decode("utf-8", "ignore"))
    return line, offset


def check_sensitivity(spec: MappingSpec, emits: list[EmitPlan], problems: list[MappingError]) -> None:
    """`sensitivity` names published fields, `allow_pii` personal ones, and every personal field
    is published protected or allowed."""
    known = {name for block in spec.emit for name in (*block.key, *block.fields)}
    known |= {name for plan in emits for name in (*plan.key_schema.fields, *plan.value_schema.fields)}
    for name in spec.sensitivity:
        if name not in known:
            problems.append(
                spec.error(
                    ("sensitivity", name),
                    f"field {name!r} is in no key or value of this mapping",
                    hint=did_you_mean(name, sorted(known)),
                    at_key=True,
                )
            )
    for index, name in enumerate(spec.allow_pii):
        if spec.sensitivity.get(name) not in PERSONAL:
            problems.append(
                spec.error(
                    ("allow_pii", index),
                    f"{name!r} is not marked pii or phi under 'sensitivity', so there is nothing to allow",
                )
            )
    for index, block in enumerate(spec.emit):
        for part in ("key", "fields"):
            for name, value in getattr(block, part).items():
                level = spec.sensitivity.get(name)
                if level not in PERSONAL or name in spec.allow_pii:
                    continue
                found = publication(value)
                path = ("emit", index, part, name)
                allow = f"or, after a privacy review, add it to 'allow_pii: [{name}]'"
                for line, column, why in found.refusals:
                    problems.append(
                        spec.error(
                            path,
                            f"field {name!r} is marked {level} and this mask() does not hide it: {why}",
                            hint=f"mask the column itself, keeping at most {MAX_MASK_KEEP} characters: "
                            f"mask(after.<column>) or mask(str(after.<column>), keep=4); or hash(...) it; "
                            f"{allow}",
                            offset=(line, column),
                        )
                    )
                if found.ways is None and not found.refusals:
                    problems.append(
                        spec.error(
                            path,
                            f"field {name!r} is marked {level} and this expression publishes it as it is",
                            hint=f"wrap it in hash(...) or mask(...), {allow}",
                        )
                    )
