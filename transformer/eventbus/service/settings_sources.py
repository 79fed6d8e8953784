"""Where the transformer's settings come from besides code and the defaults: the `--config` YAML
file (`YamlFileSource`, below the environment) and the `EVENTBUS_*` environment, whose variable
names are checked so that a misspelt one is refused rather than ignored (`check_environment_names`).
"""

from __future__ import annotations

import contextvars
import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from eventbus.errors import ConfigError

# The file `load_settings` was given, for the `YamlFileSource` that pydantic-settings builds.
CONFIG_FILE: contextvars.ContextVar[Path | None] = contextvars.ContextVar("config_file", default=None)


class YamlFileSource(PydanticBaseSettingsSource):
    """The `--config` file (ruamel.yaml, the project's YAML library), below the environment."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        path = CONFIG_FILE.get()
        self._data: dict[str, Any] = read_yaml(path) if path is not None else {}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the config file: {error.strerror}") from None
    try:
        # pure: with ruamel.yaml.clib installed, typ="safe" would use libyaml, which reads YAML 1.1
        # and refuses flow scalars such as {fingerprint: md5:abc} that YAML 1.2 allows
        data = YAML(typ="safe", pure=True).load(text)
    except YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: invalid YAML: {getattr(error, 'problem', error)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config file must be a YAML mapping (key: value lines)")
    return data


# EVENTBUS_* variables of the other commands (sources, schemas, the local stack, tests): not settings
# of the transformer, not typos.
_OTHER_COMMANDS_VARIABLES: Final = frozenset(
    {"CONFIG_FILE", "MAPPINGS_DIR", "CONNECT_URL", "CONNECTORS_DIR", "FIX_PASSWORD", "STALE_AFTER_S",
     "TEST_STACK", "CONNECT_RESTART_ROUNDS", "CONNECT_RESTART_CURE_MINUTES"}
)  # fmt: skip


def _setting_names(model: type[BaseModel], prefix: str = "") -> list[str]:
    names = []
    for name, info in model.model_fields.items():
        names.append(prefix + name)
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += _setting_names(annotation, f"{prefix}{name}__")
    return names


def check_environment_names(environment: Mapping[str, str], settings: type[BaseModel]) -> None:
    """A misspelt EVENTBUS_* variable would be ignored, the setting left at its default: refuse one
    that is close to a setting's variable (`EVENTBUS_GROUPID`, `EVENTBUS_HTTP_PORT`)."""
    names = _setting_names(settings)
    known = {name.upper() for name in names}
    for variable in environment:
        if not variable.startswith("EVENTBUS_"):
            continue
        name = variable.removeprefix("EVENTBUS_")
        if name in known or name in _OTHER_COMMANDS_VARIABLES or name.startswith("STACK_"):
            continue
        if name == "REGISTRY_URL" and "EVENTBUS_REGISTRY__URL" in environment:
            continue  # the schema commands' old name, set beside the setting
        candidates = {candidate.upper().replace("_", ""): candidate.upper() for candidate in names}
        close = difflib.get_close_matches(name.replace("_", ""), list(candidates), n=1, cutoff=0.85)
        if close:
            raise ConfigError(
                f"environment variable {variable} is not a transformer setting: did you mean "
                f"EVENTBUS_{candidates[close[0]]}? (nested settings take two underscores)"
            )
