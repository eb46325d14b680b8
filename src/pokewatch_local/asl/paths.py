"""The JSONPath subset Step Functions uses: reading paths and writing reference paths.

Supported syntax: ``$``, ``.name``, ``['name']`` / ``["name"]``, ``[0]``, ``[*]`` and ``.*``.
A path whose first token is ``$$`` reads the context object instead of the state data.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Final

from pokewatch_local.asl.errors import RUNTIME, StatesError


class PathSyntaxError(ValueError):
    """The text is not a JSONPath this interpreter understands."""


class _Wildcard:
    """Marker segment for ``[*]`` / ``.*``."""

    def __repr__(self) -> str:
        return "*"


WILDCARD: Final = _Wildcard()
type Segment = str | int | _Wildcard

_NAME = re.compile(r"[^.\[\]\s]+")
_INDEX = re.compile(r"\[\s*(\d+)\s*\]")
_QUOTED = re.compile(r"""\[\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\s*\]""")
_STAR = re.compile(r"\[\s*\*\s*\]|\.\*")


@functools.lru_cache(maxsize=1024)
def parse_path(path: str) -> tuple[Segment, ...]:
    """Split a JSONPath (starting with ``$``, not ``$$``) into its segments."""
    if not path.startswith("$") or path.startswith("$$"):
        raise PathSyntaxError(f"JSONPath must start with '$': {path!r}")
    segments: list[Segment] = []
    position = 1
    while position < len(path):
        if match := _STAR.match(path, position):
            segments.append(WILDCARD)
        elif match := _INDEX.match(path, position):
            segments.append(int(match.group(1)))
        elif match := _QUOTED.match(path, position):
            quoted = match.group(1) if match.group(1) is not None else match.group(2)
            segments.append(re.sub(r"\\(.)", r"\1", quoted))
        elif path[position] == "." and (match := _NAME.match(path, position + 1)):
            segments.append(match.group(0))
        else:
            raise PathSyntaxError(f"unsupported JSONPath syntax at {position} in {path!r}")
        position = match.end()
    return tuple(segments)


def is_context_path(path: str) -> bool:
    """Whether ``path`` addresses the context object (``$$...``)."""
    return path.startswith("$$")


def validate_path(path: str, *, reference: bool = False) -> None:
    """Check ``path`` (or ``$$`` context path) syntax; reference paths may not use wildcards."""
    segments = parse_path(path[1:] if is_context_path(path) else path)
    if reference and any(segment is WILDCARD for segment in segments):
        raise PathSyntaxError(f"a reference path cannot contain wildcards: {path!r}")


def read_path(path: str, data: Any, context: Any = None) -> Any:
    """Value at ``path`` in ``data`` (or in ``context`` for ``$$`` paths).

    A path that selects nothing raises the ``States.Runtime`` error, as in Step Functions.
    """
    if is_context_path(path):
        data, path = context, path[1:]
    try:
        segments = parse_path(path)
    except PathSyntaxError as exc:
        raise StatesError(RUNTIME, str(exc)) from exc
    found, value = _select(data, segments)
    if not found:
        raise StatesError(RUNTIME, f"The JSONPath {path!r} could not be found in the input")
    return value


def path_exists(path: str, data: Any, context: Any = None) -> bool:
    """Whether ``path`` selects a value in ``data`` (or ``context``)."""
    if is_context_path(path):
        data, path = context, path[1:]
    return _select(data, parse_path(path))[0]


def _select(data: Any, segments: tuple[Segment, ...]) -> tuple[bool, Any]:
    """Walk ``segments``; returns (found, value). A wildcard yields the list of matches."""
    current = data
    for position, segment in enumerate(segments):
        if segment is WILDCARD:
            if isinstance(current, dict):
                members = list(current.values())
            elif isinstance(current, list):
                members = current
            else:
                return False, None
            rest = segments[position + 1 :]
            # As Jayway JSONPath (used by Step Functions) does, members lacking the rest of
            # the path are skipped rather than failing the whole expression.
            matches = [value for found, value in (_select(m, rest) for m in members) if found]
            return True, matches
        if isinstance(segment, int):
            if not isinstance(current, list) or segment >= len(current):
                return False, None
            current = current[segment]
        else:
            if not isinstance(current, dict) or segment not in current:
                return False, None
            current = current[segment]
    return True, current


def write_path(path: str, data: Any, value: Any) -> Any:
    """A copy of ``data`` with ``value`` placed at the reference ``path`` (ResultPath semantics).

    Missing intermediate objects are created; ``data`` itself is never modified (only the
    objects along the path are copied).
    """
    segments = parse_path(path)
    if not segments:
        return value
    if any(not isinstance(segment, str) for segment in segments):
        raise StatesError(RUNTIME, f"ResultPath {path!r} may only name object fields")
    return _write(data, segments, value, path)


def _write(node: Any, segments: tuple[Segment, ...], value: Any, path: str) -> Any:
    if not isinstance(node, dict):
        raise StatesError(
            RUNTIME, f"Unable to apply ResultPath {path!r}: it does not address a JSON object"
        )
    key = str(segments[0])
    copy = dict(node)
    if len(segments) == 1:
        copy[key] = value
    else:
        copy[key] = _write(node.get(key, {}), segments[1:], value, path)
    return copy
