"""Source definition files: finding `connectors/NAME.yaml`, reading one into a `SourceDefinition`,
and placing each validation error at its `file:line`, under the key the user wrote.

The YAML is read with the mapping package's loader, which keeps every key's line; the models that
validate it: `spec.py`.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from eventbus.mapping.errors import MappingError
from eventbus.mapping.yaml_loader import Locations, load_yaml_file, load_yaml_text
from eventbus.sources.errors import SourceDefinitionError
from eventbus.sources.spec import SOURCE_NAME, SourceDefinition


def definition_path(connectors_dir: Path, name: str) -> Path:
    return connectors_dir / f"{name}.yaml"


def discover_definitions(connectors_dir: Path) -> list[Path]:
    if not connectors_dir.is_dir():
        return []
    return sorted(p for p in connectors_dir.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def load_definition(path: str | Path) -> SourceDefinition:
    """Read and validate one definition; the source's name is the file's stem."""
    path = Path(path)
    if not path.is_file():
        raise SourceDefinitionError(f"{path}: no such source definition")
    try:
        data, locations = load_yaml_file(path)
    except MappingError as error:  # the loader is shared with mappings; its errors carry file:line
        raise SourceDefinitionError(error.one_line()) from None
    return _validate(data, locations, str(path), path.stem)


def parse_definition(text: str, name: str, file: str = "<definition>") -> SourceDefinition:
    try:
        data, locations = load_yaml_text(text, file)
    except MappingError as error:
        raise SourceDefinitionError(error.one_line()) from None
    return _validate(data, locations, file, name)


def _validate(data: Any, locations: Locations, file: str, name: str) -> SourceDefinition:
    if not re.match(SOURCE_NAME, name):
        raise SourceDefinitionError(
            f"{file}:1: source name {name!r} (the file name) must be lowercase letters, digits and _, "
            "starting with a letter, at most 48 characters"
        )
    if not isinstance(data, dict):
        raise SourceDefinitionError(
            f"{file}:1: a source definition must be a YAML mapping (key: value lines)"
        )
    try:
        definition = SourceDefinition.model_validate(data)
    except ValidationError as error:
        raise SourceDefinitionError("\n".join(_located(error, locations, file))) from None
    definition.place(name, file, locations)
    return definition


# Keys the user writes that the models store under another name (`retention: 7d` → retention_ms).
_WRITTEN_AS = {
    "retention_ms": "retention",
    "interval_ms": "interval",
    "max_retained_wal_bytes": "max_retained_wal",
}


def _located(error: ValidationError, locations: Locations, file: str) -> list[str]:
    lines: list[str] = []
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        written = tuple(_as_written(part, loc, locations) for part in loc)
        dotted = ".".join(str(part) if isinstance(part, str) else f"[{part}]" for part in written).replace(
            ".[", "["
        )
        kind = item["type"]
        if kind == "extra_forbidden":
            position = locations.of_key(written)
            message = f"unknown key {written[-1]!r}"
            hint = _suggest(str(written[-1]), _allowed_keys(written[:-1]))
            if hint:
                message += f" (did you mean {hint!r}?)"
        elif kind == "missing":
            position = locations.of_key(written[:-1]) if written[:-1] else None
            message = f"missing required key {written[-1]!r}"
            dotted = ".".join(str(p) for p in written[:-1])
        else:
            position = locations.of_value(written)
            message = _message(item)
        line = position.line if position else 1
        lines.append(f"{file}:{line}: {dotted + ': ' if dotted else ''}{message}")
    return lines


def _as_written(part: Any, loc: tuple[Any, ...], locations: Locations) -> Any:
    """`retention_ms` → `retention` when the file says `retention:` (the model renamed it)."""
    if (
        isinstance(part, str)
        and part in _WRITTEN_AS
        and (*loc[: loc.index(part)], part) not in locations.keys
    ):
        return _WRITTEN_AS[part]
    return part


def _message(item: Any) -> str:
    text = str(item["msg"])
    text = text.removeprefix("Value error, ")
    if item["type"] == "string_pattern_mismatch":
        return f"{item.get('input')!r} does not match {item.get('ctx', {}).get('pattern', '')}"
    if item["type"].endswith("_type") and "input" in item:
        return f"{text[0].lower()}{text[1:]}, got {type(item['input']).__name__} {item['input']!r}"
    return text[0].lower() + text[1:]


def _allowed_keys(path: tuple[Any, ...]) -> list[str]:
    model: Any = SourceDefinition
    for part in path:
        if isinstance(part, int) or not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        model = field.annotation
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [_WRITTEN_AS.get(key, key) for key in model.model_fields]
    return []


def _suggest(word: str, candidates: list[str]) -> str | None:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return close[0] if close else None
