"""Error types of the ASL interpreter and the Step Functions rules for matching error names."""

from __future__ import annotations

from collections.abc import Sequence

ALL = "States.ALL"
TASK_FAILED = "States.TaskFailed"
TIMEOUT = "States.Timeout"
RUNTIME = "States.Runtime"
NO_CHOICE_MATCHED = "States.NoChoiceMatched"
DATA_LIMIT_EXCEEDED = "States.DataLimitExceeded"

# AWS documents these as terminal: no Retry or Catch (not even States.ALL) ever handles them.
TERMINAL_ERRORS = frozenset({RUNTIME, DATA_LIMIT_EXCEEDED})


class DefinitionError(ValueError):
    """The state machine definition is malformed (detected when it is loaded)."""


class UnsupportedFeature(DefinitionError):
    """The definition uses an ASL feature this interpreter does not implement."""


class StatesError(Exception):
    """A named ASL error raised while a state runs: what Retry and Catch match against."""

    def __init__(self, error: str, cause: str | None = None) -> None:
        super().__init__(f"{error}: {cause}" if cause else error)
        self.error = error
        self.cause = cause


def error_matches(error_equals: Sequence[str], error: str) -> bool:
    """Whether a retrier's or catcher's ``ErrorEquals`` list handles ``error``.

    ``States.ALL`` matches every error and ``States.TaskFailed`` every error but
    ``States.Timeout``; terminal errors are never matched.
    """
    if error in TERMINAL_ERRORS:
        return False
    for name in error_equals:
        if name in (error, ALL):
            return True
        if name == TASK_FAILED and error != TIMEOUT:
            return True
    return False
