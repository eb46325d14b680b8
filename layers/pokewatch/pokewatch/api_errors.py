"""The API's error answers: one `ErrorBody` JSON shape for every status, and the checks that turn a
bad request into one before Powertools routes it."""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from pydantic import TypeAdapter, ValidationError

from pokewatch.api_schemas import ErrorBody, ErrorDetail
from pokewatch.card_ids import CardId
from pokewatch.validation import error_message, field_name

logger = logging.getLogger(__name__)

NOT_JSON = "the request body must be JSON, sent with Content-Type: application/json"
#: What each error status of the API means, for its OpenAPI document.
ERROR_MEANINGS = {
    400: "an invalid listing cursor, or a body that is not UTF-8",
    404: "no such card, or no price of it by that date",
    413: "the request body is too large",
    415: "the request body is not JSON (Content-Type: application/json), or it is still "
    "compressed (Content-Encoding)",
    422: "invalid input (also a query parameter the route does not take, or one given twice): "
    "`details` names each field and its problem",
    503: "no model is in service; `message` says why",
    500: "an unexpected failure of the service (`internal_error`); the request may be retried",
}


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[ErrorDetail] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The answer to a request that failed with `status`, logged as "request failed"."""
    body = _failure(status, code, message, details)
    return Response(status, "application/json", body.model_dump(exclude_none=True), headers)


def invalid_request(details: list[ErrorDetail]) -> Response:
    """The 422 answer to a request with invalid fields, each named with its problem."""
    summary = "; ".join(f"{d.field}: {d.problem}" for d in details)
    return error_response(422, "invalid_request", f"invalid request: {summary}", details)


def _failure(
    status: int, code: str, message: str, details: list[ErrorDetail] | None = None
) -> ErrorBody:
    logger.info("request failed", extra={"status": status, "error": code, "detail": message})
    return ErrorBody(error=code, message=message, details=details)


def request_problems(errors: list[dict[str, Any]]) -> list[ErrorDetail]:
    """Powertools' request validation errors as fields and problems: `query.limit`,
    `market_price`, `items`, or `body` for the body as a whole."""
    return [ErrorDetail(field=_field_name(e), problem=_problem(e)) for e in errors]


def query_problems(event: Mapping[str, Any], accepted: Sequence[str]) -> list[dict[str, Any]]:
    """Validation errors (as pydantic's, located `query.<name>`) of the query parameters of a
    route taking `accepted`: one it does not take, or one given more than once.

    Ignored, a misspelt parameter (`?st=sv1`) was answered as if not given: every card. Repeated,
    Powertools joins the values with commas or validates the list, neither what was meant."""
    given = event.get("multiValueQueryStringParameters") or {
        name: [value] for name, value in (event.get("queryStringParameters") or {}).items()
    }
    errors = []
    for name, values in given.items():
        if name not in accepted:
            problem = f"unknown query parameter; this route takes {', '.join(accepted) or 'none'}"
            errors.append({"type": "extra_forbidden", "loc": ("query", name), "msg": problem})
        elif len(values) > 1:
            problem = f"given {len(values)} times; give it once"
            errors.append({"type": "repeated", "loc": ("query", name), "msg": problem})
    return errors


def card_id_problems(card_id: str) -> list[ErrorDetail]:
    """What is wrong with `card_id` as the path parameter of `/cards/{card_id}`, as the route's
    own validation would name it (`path.card_id`); empty if it is a valid card id."""
    try:
        _card_id_adapter().validate_python(card_id)
    except ValidationError as exc:
        return request_problems([{**e, "loc": ("path", "card_id")} for e in exc.errors()])
    return []


@functools.cache
def _card_id_adapter() -> TypeAdapter[str]:
    return TypeAdapter(CardId)


def _field_name(error: dict[str, Any]) -> str:
    location = [str(p) for p in error.get("loc", ())]
    if error.get("type") == "json_invalid" or location == ["body"]:
        return "body"
    return field_name(location[1:] if location[:1] == ["body"] else location)


def _problem(error: dict[str, Any]) -> str:
    if error.get("type") == "json_invalid":
        return f"not valid JSON: {error.get('ctx', {}).get('error', 'malformed')}"
    if error.get("type") == "missing" and tuple(error.get("loc", ())) == ("body",):
        return "the request has no body; send a JSON object"  # pydantic: "Field required"
    return error_message(error)


def undecodable_body(event: Mapping[str, Any]) -> Response:
    """The answer to a request whose body is not UTF-8 text: a 400, or the 415 naming its
    Content-Encoding when it declares one. API Gateway decompresses gzip and deflate bodies (and
    refuses other codings with a 415 of its own) but passes the header on, so a compressed body
    reaches the handler only through another front, or a direct invocation."""
    encoding = (_header(event, "content-encoding") or "").strip()
    if encoding and encoding.lower() != "identity":
        message = (
            f"the request body is compressed (Content-Encoding: {encoding}); "
            "send it as uncompressed JSON"
        )
        return error_response(415, "unsupported_media_type", message)
    return error_response(400, "invalid_encoding", "the request body is not UTF-8 text")


def _header(event: Mapping[str, Any], lower_name: str) -> str | None:
    """The value of a request header, whatever the case of its name (RFC 9110, 5.1)."""
    headers = event.get("headers") or {}
    return next((value for key, value in headers.items() if key.lower() == lower_name), None)


def with_decoded_path(event: dict) -> dict:
    """The event with its path parameters percent-decoded, in `pathParameters` and in `path`.

    API Gateway (REST) hands the handler the path as the client sent it, and Powertools matches
    routes and reads parameters on it as it is: `/cards/sv1-25%5Fholofoil`, which any HTTP
    client may send for `sv1-25_holofoil`, was a 422. Bytes that are not UTF-8 decode to U+FFFD,
    and an escaped `/` to a path with no route whose card id is then refused by name."""
    parameters = event.get("pathParameters") or {}
    decoded = {
        value: unquote(value, errors="replace")
        for value in parameters.values()
        if isinstance(value, str) and "%" in value
    }
    if not decoded:
        return event
    path = "/".join(decoded.get(part, part) for part in str(event.get("path", "")).split("/"))
    return {
        **event,
        "path": path,
        "pathParameters": {key: decoded.get(value, value) for key, value in parameters.items()},
    }


def checked_content_type(event: dict) -> tuple[dict | None, dict]:
    """The 415 answer (a proxy response) to a POST whose body is declared as something else than
    JSON, or None and the event with a JSON Content-Type in lower case.

    Checked before Powertools sees the request: it would parse form and multipart bodies, and a
    multipart body without a boundary makes it raise a bare ValueError (a 500). Media types are
    case-insensitive (RFC 9110, 8.3.1), but Powertools compares the header with
    `application/json` as written and would answer `APPLICATION/JSON` with a 415."""
    headers = event.get("headers") or {}
    key = next((k for k in headers if k.lower() == "content-type"), None)
    if key is None:
        return None, event
    content_type = headers[key].lower()
    # The media type before any parameter (`; charset=utf-8`): `application/jsonx` is not JSON.
    if content_type.split(";", 1)[0].strip() == "application/json":
        if content_type == headers[key]:
            return None, event
        return None, {**event, "headers": {**headers, key: content_type}}
    if event.get("httpMethod") != "POST" or not event.get("body"):
        return None, event
    body = _failure(415, "unsupported_media_type", NOT_JSON)
    return {
        "statusCode": 415,
        "multiValueHeaders": {"Content-Type": ["application/json"]},
        "body": body.model_dump_json(exclude_none=True),
        "isBase64Encoded": False,
    }, event
