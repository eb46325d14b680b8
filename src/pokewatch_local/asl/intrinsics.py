"""Intrinsic functions (``States.Format(...)`` and friends): a parser for their argument syntax
and an evaluator with the Step Functions semantics.

Argument syntax: string literals in single quotes (``\\'``, ``\\{``, ``\\}`` and ``\\\\`` escape
the reserved characters), numbers, ``true``/``false``/``null``, JSONPaths (``$.x``, ``$$.x``)
and nested calls.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import math
import random as random_module
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from pokewatch_local.asl.errors import RUNTIME, StatesError
from pokewatch_local.asl.paths import PathSyntaxError, read_path, validate_path


class IntrinsicSyntaxError(ValueError):
    """The text is not a well-formed intrinsic function call."""


@dataclass(frozen=True)
class Literal:
    """A literal argument; ``source`` keeps a string literal's escaped text for States.Format."""

    value: Any
    source: str | None = None


@dataclass(frozen=True)
class PathArgument:
    """A JSONPath argument, resolved against the state data or the context object."""

    path: str


@dataclass(frozen=True)
class Call:
    """A call of an intrinsic function."""

    name: str
    arguments: tuple[Literal | PathArgument | Call, ...]


type Argument = Literal | PathArgument | Call

_FUNCTION_NAME = re.compile(r"States\.[A-Za-z0-9]+")
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")
_KEYWORDS = {"true": True, "false": False, "null": None}


class _Parser:
    """Recursive-descent parser over one intrinsic expression."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0

    def parse(self) -> Call:
        call = self._call()
        self._skip_spaces()
        if self.position != len(self.text):
            self._fail("unexpected trailing text")
        return call

    def _fail(self, message: str) -> NoReturn:
        raise IntrinsicSyntaxError(f"{message} at {self.position} in {self.text!r}")

    def _skip_spaces(self) -> None:
        while self.position < len(self.text) and self.text[self.position].isspace():
            self.position += 1

    def _call(self) -> Call:
        self._skip_spaces()
        match = _FUNCTION_NAME.match(self.text, self.position)
        if not match:
            self._fail("expected an intrinsic function name")
        name = match.group(0)
        if name not in FUNCTIONS:
            raise IntrinsicSyntaxError(f"unknown intrinsic function {name!r}")
        self.position = match.end()
        self._skip_spaces()
        if not self.text.startswith("(", self.position):
            self._fail("expected '('")
        self.position += 1
        arguments: list[Argument] = []
        self._skip_spaces()
        if self.text.startswith(")", self.position):
            self.position += 1
            return Call(name, ())
        while True:
            arguments.append(self._argument())
            self._skip_spaces()
            if self.text.startswith(",", self.position):
                self.position += 1
            elif self.text.startswith(")", self.position):
                self.position += 1
                return Call(name, tuple(arguments))
            else:
                self._fail("expected ',' or ')'")

    def _argument(self) -> Argument:
        self._skip_spaces()
        rest = self.text[self.position :]
        if rest.startswith("'"):
            return self._string()
        if rest.startswith("$"):
            return self._path()
        if rest.startswith("States."):
            return self._call()
        if number := _NUMBER.match(self.text, self.position):
            self.position = number.end()
            text = number.group(0)
            is_integer = number.group(1) is None and number.group(2) is None
            return Literal(int(text) if is_integer else float(text))
        for keyword, value in _KEYWORDS.items():
            if rest.startswith(keyword):
                self.position += len(keyword)
                return Literal(value)
        self._fail("expected an argument")
        raise AssertionError("unreachable")

    def _string(self) -> Literal:
        start = self.position + 1
        position = start
        characters: list[str] = []
        while position < len(self.text):
            character = self.text[position]
            if character == "\\" and position + 1 < len(self.text):
                characters.append(self.text[position + 1])
                position += 2
            elif character == "'":
                self.position = position + 1
                return Literal("".join(characters), source=self.text[start:position])
            else:
                characters.append(character)
                position += 1
        self._fail("unterminated string literal")
        raise AssertionError("unreachable")

    def _path(self) -> PathArgument:
        # A path runs to the next ',' or ')' that is outside brackets and quotes.
        start = self.position
        depth = 0
        quote: str | None = None
        while self.position < len(self.text):
            character = self.text[self.position]
            if quote:
                if character == "\\":
                    self.position += 1
                elif character == quote:
                    quote = None
            elif character in "'\"":
                quote = character
            elif character == "[":
                depth += 1
            elif character == "]":
                depth -= 1
            elif depth == 0 and (character in ",)" or character.isspace()):
                break
            self.position += 1
        path = self.text[start : self.position]
        try:
            validate_path(path)
        except PathSyntaxError as exc:
            raise IntrinsicSyntaxError(str(exc)) from exc
        return PathArgument(path)


@functools.lru_cache(maxsize=1024)
def parse_intrinsic(text: str) -> Call:
    """Parse an intrinsic function call such as ``States.Format('{}', $.name)``."""
    return _Parser(text).parse()


def is_intrinsic(text: str) -> bool:
    """Whether a ``.$`` value is an intrinsic function call rather than a path."""
    return text.lstrip().startswith("States.")


def evaluate_intrinsic(
    text: str, data: Any, context: Any, random: Callable[[], float] = random_module.random
) -> Any:
    """Evaluate the intrinsic call ``text`` against the state data and context object.

    Any failure (bad argument type, missing path, out-of-range index) is ``States.Runtime``.
    """
    try:
        call = parse_intrinsic(text)
    except IntrinsicSyntaxError as exc:
        raise StatesError(RUNTIME, str(exc)) from exc
    return _Evaluator(data, context, random).call(call)


@dataclass
class _Evaluator:
    data: Any
    context: Any
    random: Callable[[], float]

    def call(self, call: Call) -> Any:
        values = [self.argument(argument) for argument in call.arguments]
        function = FUNCTIONS[call.name]
        try:
            if call.name == "States.Format":
                return _format(call.arguments, values)
            if call.name == "States.MathRandom":
                return _math_random(self.random, *values)
            return function(*values)
        except StatesError:
            raise
        except (TypeError, ValueError, ArithmeticError, IndexError) as exc:
            raise StatesError(RUNTIME, f"{call.name} failed: {exc}") from exc

    def argument(self, argument: Argument) -> Any:
        if isinstance(argument, Literal):
            return argument.value
        if isinstance(argument, PathArgument):
            return read_path(argument.path, self.data, self.context)
        return self.call(argument)


def _fail(function: str, message: str) -> StatesError:
    return StatesError(RUNTIME, f"{function}: {message}")


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _require_integer(function: str, value: Any) -> int:
    if not _is_integer(value):
        raise _fail(function, f"expected an integer, got {value!r}")
    return int(value)


def _require(function: str, value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, kind):
        raise _fail(function, f"expected {what}, got {value!r}")
    return value


def json_equal(left: Any, right: Any) -> bool:
    """JSON value equality (unlike ``==``, ``true`` is not ``1``)."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    return type(left) is type(right) and left == right


_TEMPLATE_TOKEN = re.compile(r"\\(.)|(\{\})")


def _template_pieces(template: str, escaped: bool) -> list[str]:
    """The literal text between the ``{}`` placeholders of a States.Format template.

    In the escaped source of a string literal ``\\{}`` is a literal brace, not a placeholder.
    """
    if not escaped:
        return template.split("{}")
    pieces = [""]
    position = 0
    for token in _TEMPLATE_TOKEN.finditer(template):
        pieces[-1] += template[position : token.start()]
        if token.group(2):
            pieces.append("")
        else:
            pieces[-1] += token.group(1)
        position = token.end()
    pieces[-1] += template[position:]
    return pieces


def _format(arguments: tuple[Argument, ...], values: list[Any]) -> str:
    if not values or not isinstance(values[0], str):
        raise _fail("States.Format", "the first argument must be a template string")
    template = arguments[0]
    if isinstance(template, Literal) and template.source is not None:
        pieces = _template_pieces(template.source, escaped=True)
    else:
        pieces = _template_pieces(values[0], escaped=False)
    substitutions = values[1:]
    if len(pieces) - 1 != len(substitutions):
        raise _fail(
            "States.Format",
            f"the template has {len(pieces) - 1} placeholders but {len(substitutions)} "
            "arguments were given",
        )
    rendered = [pieces[0]]
    for piece, value in zip(pieces[1:], substitutions, strict=True):
        if isinstance(value, dict | list):
            raise _fail("States.Format", f"cannot format a JSON object or array: {value!r}")
        rendered.append(value if isinstance(value, str) else json.dumps(value))
        rendered.append(piece)
    return "".join(rendered)


def _string_to_json(text: Any) -> Any:
    return json.loads(_require("States.StringToJson", text, str, "a string"))


def _json_to_string(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _array(*values: Any) -> list[Any]:
    return list(values)


def _array_partition(array: Any, size: Any) -> list[list[Any]]:
    items = _require("States.ArrayPartition", array, list, "an array")
    chunk = _require_integer("States.ArrayPartition", size)
    if chunk <= 0:
        raise _fail("States.ArrayPartition", "the chunk size must be positive")
    return [items[start : start + chunk] for start in range(0, len(items), chunk)]


def _array_contains(array: Any, value: Any) -> bool:
    items = _require("States.ArrayContains", array, list, "an array")
    return any(json_equal(item, value) for item in items)


_MAX_RANGE_ITEMS = 1000


def _array_range(start: Any, end: Any, step: Any) -> list[int]:
    first, last, increment = (_require_integer("States.ArrayRange", v) for v in (start, end, step))
    if increment == 0:
        raise _fail("States.ArrayRange", "the step must not be 0")
    items = list(range(first, last + (1 if increment > 0 else -1), increment))
    if len(items) > _MAX_RANGE_ITEMS:
        raise _fail("States.ArrayRange", f"more than {_MAX_RANGE_ITEMS} items")
    return items


def _array_get_item(array: Any, index: Any) -> Any:
    items = _require("States.ArrayGetItem", array, list, "an array")
    position = _require_integer("States.ArrayGetItem", index)
    if not 0 <= position < len(items):
        raise _fail("States.ArrayGetItem", f"index {position} out of range")
    return items[position]


def _array_length(array: Any) -> int:
    return len(_require("States.ArrayLength", array, list, "an array"))


def _array_unique(array: Any) -> list[Any]:
    unique: list[Any] = []
    for item in _require("States.ArrayUnique", array, list, "an array"):
        if not any(json_equal(item, seen) for seen in unique):
            unique.append(item)
    return unique


_MAX_ENCODED_CHARACTERS = 10_000


def _base64_encode(text: Any) -> str:
    value = _require("States.Base64Encode", text, str, "a string")
    if len(value) > _MAX_ENCODED_CHARACTERS:
        raise _fail("States.Base64Encode", f"input longer than {_MAX_ENCODED_CHARACTERS}")
    return base64.b64encode(value.encode()).decode("ascii")


def _base64_decode(text: Any) -> str:
    value = _require("States.Base64Decode", text, str, "a string")
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise _fail("States.Base64Decode", f"invalid base64 data: {exc}") from exc


_HASH_ALGORITHMS = {
    "MD5": "md5",
    "SHA-1": "sha1",
    "SHA-256": "sha256",
    "SHA-384": "sha384",
    "SHA-512": "sha512",
}


def _hash(data: Any, algorithm: Any) -> str:
    if algorithm not in _HASH_ALGORITHMS:
        raise _fail("States.Hash", f"unsupported algorithm {algorithm!r}")
    text = data if isinstance(data, str) else _json_to_string(data)
    return hashlib.new(_HASH_ALGORITHMS[algorithm], text.encode()).hexdigest()


def _json_merge(left: Any, right: Any, deep: Any) -> dict[str, Any]:
    first = _require("States.JsonMerge", left, dict, "a JSON object")
    second = _require("States.JsonMerge", right, dict, "a JSON object")
    if deep is not False:
        # Step Functions only implements the shallow mode and rejects anything else.
        raise _fail("States.JsonMerge", "only shallow merging (false) is supported")
    return {**first, **second}


def _math_random(random: Callable[[], float], start: Any, end: Any, seed: Any = None) -> int:
    low = _require_integer("States.MathRandom", start)
    high = _require_integer("States.MathRandom", end)
    if high <= low:
        raise _fail("States.MathRandom", "the end must be greater than the start")
    draw = random if seed is None else random_module.Random(seed).random
    # Start inclusive, end exclusive, as AWS documents.
    return low + math.floor(draw() * (high - low))


def _math_add(left: Any, right: Any) -> int:
    return _require_integer("States.MathAdd", left) + _require_integer("States.MathAdd", right)


def _string_split(text: Any, delimiters: Any) -> list[str]:
    value = _require("States.StringSplit", text, str, "a string")
    separators = _require("States.StringSplit", delimiters, str, "a string")
    if not separators:
        return [value] if value else []
    # Every character of the second argument is a separator; empty tokens are dropped.
    pattern = "[" + re.escape(separators) + "]"
    return [token for token in re.split(pattern, value) if token]


def _uuid() -> str:
    return str(uuid.uuid4())


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "States.Format": _format,
    "States.StringToJson": _string_to_json,
    "States.JsonToString": _json_to_string,
    "States.Array": _array,
    "States.ArrayPartition": _array_partition,
    "States.ArrayContains": _array_contains,
    "States.ArrayRange": _array_range,
    "States.ArrayGetItem": _array_get_item,
    "States.ArrayLength": _array_length,
    "States.ArrayUnique": _array_unique,
    "States.Base64Encode": _base64_encode,
    "States.Base64Decode": _base64_decode,
    "States.Hash": _hash,
    "States.JsonMerge": _json_merge,
    "States.MathRandom": _math_random,
    "States.MathAdd": _math_add,
    "States.StringSplit": _string_split,
    "States.UUID": _uuid,
}
