"""Environment variable names of the service's settings (EVENTBUS_<FIELD>, EVENTBUS_<SECTION>__<FIELD>),
for tests that check deployment files (compose, Kubernetes) name only settings the service knows."""

from __future__ import annotations

from pydantic import BaseModel

from eventbus.service.settings import TransformerSettings

PREFIX = "EVENTBUS_"


def setting_env_names(model: type[BaseModel] = TransformerSettings, prefix: str = PREFIX) -> set[str]:
    """Every variable the settings read: nested sections included, the sections themselves too (as JSON)."""
    names = set()
    for field_name, field in model.model_fields.items():
        name = f"{prefix}{field_name.upper()}"
        names.add(name)
        annotation = field.annotation
        nested = [
            candidate
            for candidate in getattr(annotation, "__args__", (annotation,))
            if isinstance(candidate, type) and issubclass(candidate, BaseModel)
        ]
        for section in nested:
            names |= setting_env_names(section, f"{name}__")
    return names


def unknown_settings(names: set[str] | list[str]) -> list[str]:
    """The EVENTBUS_* names in `names` that no setting reads (a misspelling is silently ignored)."""
    known = setting_env_names()
    return sorted(name for name in names if name.startswith(PREFIX) and name not in known)
