"""Declarative mappings: YAML file → validated spec → one generated Python function per table version.

Lifecycle (names follow dbt's "what the user wrote → what the engine runs"):
`load_mapping(path) -> MappingSpec` → `compile_mapping(spec) -> CompiledMapping` →
`compiled.bind(table)(change) -> list[CuratedEvent]`.
"""

from eventbus.mapping.compiler import CompiledMapping, compile_mapping
from eventbus.mapping.errors import (
    MappingBindError,
    MappingError,
    MappingErrors,
    MappingEvaluationError,
)
from eventbus.mapping.spec import MappingSpec, load_mapping

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
