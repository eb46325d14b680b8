"""A local interpreter of the Amazon States Language (JSONPath query language).

``pokewatch pipeline run`` uses it to execute ``statemachine/pipeline.asl.json`` with the
semantics AWS Step Functions documents: see ``StateMachine``.
"""

from pokewatch_local.asl.errors import DefinitionError, StatesError, UnsupportedFeature
from pokewatch_local.asl.machine import (
    MAX_INLINE_MAP_CONCURRENCY,
    ExecutionEvent,
    ExecutionResult,
    StateMachine,
    TaskContext,
    TaskInvoker,
)

__all__ = [
    "MAX_INLINE_MAP_CONCURRENCY",
    "DefinitionError",
    "ExecutionEvent",
    "ExecutionResult",
    "StateMachine",
    "StatesError",
    "TaskContext",
    "TaskInvoker",
    "UnsupportedFeature",
]
