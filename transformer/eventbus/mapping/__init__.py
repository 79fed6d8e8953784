"""Declarative mappings: YAML file → validated spec → one generated Python function per table version.

Lifecycle (names follow dbt's "what the user wrote → what the engine runs"):
`load_mapping(path) -> MappingSpec` → `compile_mapping(spec) -> CompiledMapping` →
`compiled.bind(table)(change) -> list[CuratedEvent]`.

The names below are imported on first use (PEP 562), so that importing one light module of the
package (its errors, say) does not load the compiler: the CLI starts faster.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eventbus.mapping.compiler import CompiledMapping, compile_mapping
    from eventbus.mapping.errors import (
        MappingBindError,
        MappingError,
        MappingErrors,
        MappingEvaluationError,
    )
    from eventbus.mapping.spec import MappingSpec, load_mapping

_WHERE = {
    "CompiledMapping": "eventbus.mapping.compiler",
    "compile_mapping": "eventbus.mapping.compiler",
    "MappingBindError": "eventbus.mapping.errors",
    "MappingError": "eventbus.mapping.errors",
    "MappingErrors": "eventbus.mapping.errors",
    "MappingEvaluationError": "eventbus.mapping.errors",
    "MappingSpec": "eventbus.mapping.spec",
    "load_mapping": "eventbus.mapping.spec",
}

__all__ = [
    "CompiledMapping",
    "MappingBindError",
    "MappingError",
    "MappingErrors",
    "MappingEvaluationError",
    "MappingSpec",
    "compile_mapping",
    "load_mapping",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'eventbus.mapping' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
