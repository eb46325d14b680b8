"""`pokewatch serve`: the API on a real HTTP server (waitress), routed as `template.yaml` routes
it. Each request becomes the API Gateway (REST) proxy event its route would produce, and the
handler's answer goes back as HTTP, so the handler runs here exactly as it would behind API
Gateway. Unknown paths and methods get API Gateway's own answer before any handler runs."""

from __future__ import annotations

import base64
import datetime as dt
import http
import json
import time
import uuid
import zlib
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pokewatch_local.lambda_runtime import LocalLambda
from pokewatch_local.template import Route, SamTemplate

#: API Gateway's payload limit.
MAX_BODY_BYTES = 10 * 1024 * 1024
#: The content codings API Gateway (REST) decompresses a request body from, by default, before
#: the integration sees it (with the Content-Encoding header left in the event); another coding,
#: or a body that is not in the coding it declares, is its 415 (`identity` is no coding).
_INFLATE_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
STAGE = "local"

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def proxy_event(
    route: Route,
    path_parameters: dict[str, str],
    method: str,
    path: str,
    query_string: str,
    headers: dict[str, str],
    body: bytes,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """The API Gateway REST proxy event for one request."""
    query = parse_qs(query_string, keep_blank_values=True)
    try:
        text, is_base64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, is_base64 = base64.b64encode(body).decode(), True
    now = dt.datetime.now(dt.UTC)
    return {
        "resource": route.path,
        "path": path,
        "httpMethod": method,
        "headers": headers or None,
        "multiValueHeaders": {k: [v] for k, v in headers.items()} or None,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": route.path,
            "httpMethod": method,
            "path": path,  # served at the root, as under a custom domain
            "stage": STAGE,
            "requestId": str(uuid.uuid4()),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "protocol": "HTTP/1.1",
            "identity": {"sourceIp": source_ip, "userAgent": headers.get("User-Agent")},
            "accountId": "000000000000",
            "apiId": "local",
        },
        "body": text if body else None,
        "isBase64Encoded": is_base64,
    }


class ApiGatewayApp:
    """A WSGI application standing in for API Gateway in front of the template's functions."""

    def __init__(self, template: SamTemplate, lambdas: LocalLambda) -> None:
        self.routes = template.routes()
        self.lambdas = lambdas

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"].upper()
        path = _request_path(environ)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > MAX_BODY_BYTES:
            return _answer(start_response, 413, {"message": "Request Too Long"})
        matched = [
            (r, params) for r in self.routes if (params := r.match(method, path)) is not None
        ]
        if not matched:
            # API Gateway's answer to a path or method it has no resource for.
            return _answer(start_response, 403, {"message": "Missing Authentication Token"})
        route, params = matched[0]
        body = _decompressed(
            environ["wsgi.input"].read(length) if length else b"",
            environ.get("HTTP_CONTENT_ENCODING", ""),
        )
        if body is None:
            return _answer(start_response, 415, {"message": "Unsupported Media Type"})
        if len(body) > MAX_BODY_BYTES:
            return _answer(start_response, 413, {"message": "Request Too Long"})
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        event = proxy_event(
            route,
            params,
            method,
            path,
            environ.get("QUERY_STRING", ""),
            headers,
            body,
            environ.get("REMOTE_ADDR", "127.0.0.1"),
        )
        started = time.perf_counter()
        try:
            response = self.lambdas.invoke(route.function, event)
        except Exception as exc:  # what API Gateway answers when the integration fails
            print(f"✘ {method} {path}: {type(exc).__name__}: {exc}")
            return _answer(start_response, 502, {"message": "Internal server error"})
        took_ms = (time.perf_counter() - started) * 1000
        print(f"{method} {path} → {response.get('statusCode')} ({took_ms:.1f} ms)", flush=True)
        return _proxy_answer(start_response, response)


def _decompressed(body: bytes, content_encoding: str) -> bytes | None:
    """`body` decompressed from the codings its Content-Encoding lists, as API Gateway does, or
    None for a coding it does not take or a body not in the coding declared. Inflating stops
    past MAX_BODY_BYTES: a small body can inflate to any size."""
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    for coding in reversed(codings):  # listed in the order they were applied
        if coding == "identity" or not body:
            continue
        if coding not in _INFLATE_WBITS:
            return None
        inflater = zlib.decompressobj(_INFLATE_WBITS[coding])
        try:
            body = inflater.decompress(body, MAX_BODY_BYTES + 1)
        except zlib.error:
            return None
        if len(body) > MAX_BODY_BYTES:
            return body
        if not inflater.eof:  # cut short
            return None
    return body


def _request_path(environ: dict[str, Any]) -> str:
    """The request's path as the client sent it, percent-escapes and all: API Gateway (REST)
    routes on it and puts it in the event's `path` and `pathParameters` undecoded
    (`/cards/a%2Fb` is the card id `a%2Fb`; only the query string is decoded). WSGI's PATH_INFO
    is decoded, so the request target is read from waitress's REQUEST_URI instead."""
    target = environ.get("REQUEST_URI") or "/"
    if not target.startswith("/"):  # the absolute form, `GET http://host/cards`
        target = urlsplit(target).path or "/"
    path = target.split("?", 1)[0].split("#", 1)[0]
    # Bytes a client sent unescaped arrive as latin-1 text (PEP 3333); they were UTF-8.
    return path.encode("latin-1").decode("utf-8", errors="replace")


def _status_line(status: int) -> str:
    """`415 Unsupported Media Type`: the standard's reason for any status a handler may answer."""
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:  # a status no RFC names; the reason phrase is only informative
        return f"{status} Unknown"


def _answer(start_response: StartResponse, status: int, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(
        _status_line(status),
        [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
    )
    return [data]


def _proxy_answer(start_response: StartResponse, response: dict[str, Any]) -> list[bytes]:
    status = int(response.get("statusCode", 502))
    body = response.get("body") or ""
    data = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
    headers = [(k, str(v)) for k, v in (response.get("headers") or {}).items()]
    for key, values in (response.get("multiValueHeaders") or {}).items():
        headers.extend((key, str(v)) for v in values if (key, str(v)) not in headers)
    headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
    headers.append(("Content-Length", str(len(data))))
    start_response(_status_line(status), headers)
    return [data]


def make_server(app: ApiGatewayApp, host: str, port: int, threads: int = 8) -> Any:
    """A waitress server for the app (port 0 picks a free port); `.run()` serves until closed."""
    from waitress.server import create_server

    return create_server(app, host=host, port=port, threads=threads, ident="pokewatch")
