"""The time the current Lambda invocation has left, so that work which retries stops in time to
fail with its own error, rather than as the function's timeout that names nothing.

The step handler sets the limit from the Lambda context (`time_limit`); the HTTP client reads it
(`seconds_left`). Outside a handler (the CLI's own commands, tests) there is no limit. A context
variable rather than a parameter: the limit belongs to the invocation, not to a step's request,
and only the HTTP client, a source and a page loop below the step, reads it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

#: Time kept back from the function's timeout: the step still has to write its result (collect
#: puts the set's partition) or raise its error, and Lambda to report it.
MARGIN_SECONDS = 10.0

_end: ContextVar[float | None] = ContextVar("pokewatch_invocation_end", default=None)


@contextmanager
def time_limit(remaining_seconds: float) -> Iterator[None]:
    """Within the block, `seconds_left` counts down to `remaining_seconds` from now, less
    `MARGIN_SECONDS`."""
    token = _end.set(time.monotonic() + remaining_seconds - MARGIN_SECONDS)
    try:
        yield
    finally:
        _end.reset(token)


def seconds_left() -> float | None:
    """Seconds the work of this invocation may still take (0 or less: none), or None outside
    `time_limit`."""
    end = _end.get()
    return None if end is None else end - time.monotonic()
