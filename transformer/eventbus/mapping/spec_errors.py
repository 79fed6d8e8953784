"""A mapping file's validation errors, each placed where it is in the YAML and said in our words.

pydantic reports errors by model path (`emit.0.key_schema`) in its own phrasing; `located_errors`
turns them into `MappingError`s at `file:line:col`, with the key path as the user wrote it (a single
`emit:` block has no list index), hints for unknown keys and misspelt values, and one error per
place where a union reports one per branch. Apart from the models (`spec.py`), which only declare
what a mapping file may contain.
"""

from __future__ import annotations

import difflib
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from eventbus.mapping.errors import MappingError, MappingErrors
from eventbus.mapping.yaml_loader import KeyPath, Locations

_OPERATION_CODES = {"c": "insert", "u": "update", "d": "delete", "r": "snapshot"}


def _literal_hint(item: Any, loc: tuple[Any, ...]) -> str | None:
    """A hint for a value outside a fixed set: what YAML made of it, or the closest allowed one."""
    given = item.get("input")
    expected = item.get("ctx", {}).get("expected", "")
    allowed = [w.strip(" '") for w in expected.replace(" or ", ",").split(",")]
    if given is None and "null" in allowed:
        return 'YAML reads a bare null as "no value": quote it, "null"'
    if isinstance(given, bool) and str(given).lower() in allowed:
        return f'YAML reads a bare {str(given).lower()} as a boolean: quote it, "{str(given).lower()}"'
    if not isinstance(given, str):
        return None
    if loc and loc[0] == "on":
        if "," in given:
            names = ", ".join(part.strip() for part in given.split(","))
            return f"several operations are a list: on: [{names}]"
        if given in _OPERATION_CODES:
            return f"operations are named: {given!r} is {_OPERATION_CODES[given]}"
    return _suggest(given, allowed)


def dotted(path: KeyPath) -> str:
    """A key path as messages write it: `emit[0].key_schema`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def located_errors(
    error: ValidationError,
    data: Any,
    locations: Locations,
    file: str,
    root: type[BaseModel],
    at: KeyPath = (),
) -> MappingErrors:
    """pydantic's errors of `data` as `MappingErrors`, each at its YAML position; `at` is where
    `data` is in the file (a test of a tests file), empty for a whole mapping file."""
    problems: list[MappingError] = []
    seen: set[tuple[Any, ...]] = set()
    emit_single = isinstance(data, dict) and isinstance(data.get("emit"), dict)
    on_single = isinstance(data, dict) and isinstance(data.get("on"), str)
    for item in error.errors(include_url=False):
        loc = (*at, *(part for part in item["loc"] if not _is_union_tag(part)))
        yaml_loc: tuple[Any, ...] = loc
        if (
            not at
            and len(loc) >= 2
            and loc[1] == 0
            and ((loc[0] == "emit" and emit_single) or (loc[0] == "on" and on_single))
        ):
            yaml_loc = (loc[0], *loc[2:])
        kind = item["type"]
        hint = None
        if kind == "extra_forbidden":
            known = _known_keys(root, loc[len(at) : -1])
            message = f"unknown key {loc[-1]!r}"
            hint = _suggest(str(loc[-1]), known) or (f"allowed keys: {', '.join(known)}" if known else None)
            position = locations.of_key(yaml_loc)
        elif kind == "missing":
            message = f"missing required key {loc[-1]!r}"
            position = locations.of_key(yaml_loc[:-1]) if yaml_loc[:-1] else None
            position = position or (locations.of_value(yaml_loc[:-1]) if yaml_loc[:-1] else None)
            if not yaml_loc[:-1]:
                line, column = 1, 1
                position = None
                problems.append(
                    MappingError(message, file=file, line=line, column=column, key_path=dotted(loc))
                )
                continue
        else:
            message = _message(item)
            if kind == "literal_error":
                hint = _literal_hint(item, loc)
            position = locations.of_value(yaml_loc)
        marker = loc
        if marker in seen:
            continue  # each branch of a union (`str | bool`) reports its own failure: keep the first
        seen.add(marker)
        problems.append(
            MappingError(
                message,
                file=file,
                line=position.line if position else None,
                column=position.column if position else None,
                key_path=dotted(loc),
                hint=hint,
            )
        )
    return MappingErrors(problems)


def _is_union_tag(part: Any) -> bool:
    # pydantic inserts the union member ("str", "list[EmitSpec]", "function-after[...]") into locs
    return isinstance(part, str) and ("[" in part or part in ("str", "bool", "int", "float", "none", "dict"))


def _message(item: Any) -> str:
    message = str(item["msg"]).removeprefix("Value error, ")  # a validator's own reason, as it is
    if item["type"] == "string_pattern_mismatch":
        pattern = item.get("ctx", {}).get("pattern", "")
        return f"{item.get('input')!r} does not match the required form {pattern}"
    if item["type"].endswith("_type") and "input" in item:
        return f"{message[0].lower()}{message[1:]}, got {type(item['input']).__name__} {item['input']!r}"
    return message[0].lower() + message[1:]


def _suggest(word: str, candidates: list[str]) -> str | None:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def _known_keys(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed where an unknown key was found, by walking the models from `root` along `loc`."""
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return []
        model = _inner_model(model.model_fields[part].annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is not None or get_args(annotation):
        for argument in get_args(annotation):
            found = _inner_model(argument)
            if found is not None:
                return found
    return None
