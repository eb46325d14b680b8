"""The prediction API over HTTP: `pokewatch serve`'s server (API Gateway stand-in + the handler in
process), started in a thread on a free port, and once the `pokewatch serve` command itself."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import re
import subprocess
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from api_fixtures import HOSTILE_BODIES, ROOT, card_id_of, promoted_store, serve_process

from pokewatch.store import LocalStore
from pokewatch_local.lambda_runtime import LocalLambda
from pokewatch_local.server import ApiGatewayApp, make_server
from pokewatch_local.template import SamTemplate

CARD = card_id_of(0)


@dataclass
class Answer:
    """One HTTP answer."""

    status: int
    headers: dict[str, str]
    body: Any
    reason: str = ""


class Client:
    """Raw HTTP requests (paths are sent exactly as given, bodies as bytes)."""

    def __init__(self, port: int) -> None:
        self.port = port

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """Send one request and read the whole answer."""
        if isinstance(body, str):
            body = body.encode()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        answer_headers = {k.lower(): v for k, v in response.getheaders()}
        content_type = answer_headers.get("content-type", "")
        return Answer(
            response.status,
            answer_headers,
            json.loads(data) if "json" in content_type else data.decode(),
            response.reason,
        )

    def post(self, path: str, body: Any) -> Answer:
        """POST `body` as JSON."""
        return self.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})


@pytest.fixture(scope="module")
def server_for() -> Iterator[Any]:
    """Start servers like `pokewatch serve` does, in threads on free ports; all stopped at the
    end of the module."""
    started: list[tuple[Any, threading.Thread, LocalLambda]] = []
    template = SamTemplate(ROOT / "template.yaml")
    stopping = threading.Event()

    def run(server: Any) -> None:
        try:
            server.run()
        except OSError:
            # close() from this thread can pull the socket out from under the loop's select():
            # the way the loop ends here, not a failure of the server.
            if not stopping.is_set():
                raise

    def start(store: LocalStore, functions: Any = None) -> Client:
        """A server over `store`; `functions` stands in for the template's if given."""
        lambdas = LocalLambda(template, {"POKEWATCH_STORE": store.uri})
        server = make_server(ApiGatewayApp(template, functions or lambdas), "127.0.0.1", 0)
        thread = threading.Thread(target=run, args=(server,), daemon=True)
        thread.start()
        started.append((server, thread, lambdas))
        return Client(server.effective_port)

    yield start
    stopping.set()
    for server, thread, lambdas in started:
        server.close()
        thread.join(timeout=5)
        lambdas.restore_environment()


@pytest.fixture(scope="module")
def client(server_for: Any, tmp_path_factory: pytest.TempPathFactory) -> Client:
    """A server over a store with model v1 in service."""
    return server_for(promoted_store(tmp_path_factory.mktemp("store")))


def assert_error(answer: Answer, status: int, code: str | None = None) -> None:
    """A JSON error answer naming the problem."""
    assert answer.status == status, answer
    assert isinstance(answer.body, dict), answer
    assert answer.body.get("message"), answer
    if code:
        assert answer.body["error"] == code, answer


def test_every_route_answers_over_http(client: Client) -> None:
    health = client.request("GET", "/health")
    assert (health.status, health.body["status"], health.body["model_version"]) == (200, "ok", "v1")
    page = client.request("GET", "/cards?limit=3&set=sv1")
    assert page.status == 200 and len(page.body["items"]) == 3
    after = client.request("GET", f"/cards?limit=3&set=sv1&cursor={page.body['next_cursor']}")
    assert after.status == 200
    assert after.body["items"][0]["card_id"] > page.body["items"][-1]["card_id"]
    search = client.request("GET", "/cards?q=flab%C3%A9b%C3%A9")
    assert search.status == 200 and search.body["total"] == 4
    card = client.request("GET", f"/cards/{CARD}")
    assert card.status == 200 and card.body["card_id"] == CARD
    escaped = client.request("GET", "/cards/" + CARD.replace("_", "%5F"))
    assert escaped.status == 200 and escaped.body == card.body
    predicted = client.post("/predict", {"card_id": CARD, "market_price": 1.0})
    assert predicted.status == 200 and predicted.body["market_price"] == 1.0
    batch = client.post("/predict/batch", {"items": [{"card_id": CARD}, {"card_id": "x-1"}]})
    assert batch.status == 200
    assert [r.get("status") for r in batch.body["results"]] == [None, 404]
    spec = client.request("GET", "/openapi.json")
    assert spec.status == 200 and "/predict/batch" in spec.body["paths"]
    swagger = client.request("GET", "/swagger")
    assert swagger.status == 200 and "swagger-ui" in swagger.body
    # "Try it out" on the page calls the routes where this server serves them: at the root.
    assert client.request("GET", "/swagger?format=json").body["servers"] == [{"url": "/"}]
    assert health.headers["content-type"] == "application/json"


def test_error_statuses_over_http(client: Client) -> None:
    assert_error(client.request("GET", "/cards/nope-1_holofoil"), 404, "not_found")
    assert_error(client.post("/predict", {"card_id": "nope-1_holofoil"}), 404, "not_found")
    assert_error(client.request("GET", "/cards?limit=0"), 422, "invalid_request")
    assert_error(client.request("GET", "/cards?cursor=zzz"), 400, "invalid_cursor")
    for query, field in [("st=sv1", "query.st"), ("set=sv1&set=sv2", "query.set")]:
        answer = client.request("GET", f"/cards?{query}")
        assert_error(answer, 422, "invalid_request")
        assert [d["field"] for d in answer.body["details"]] == [field]
    assert_error(client.request("GET", "/cards?limit=1_0"), 422, "invalid_request")
    items = [{"card_id": CARD}] * 101
    assert_error(client.post("/predict/batch", {"items": items}), 422, "invalid_request")
    assert_error(client.post("/predict/batch", {"items": [{"card_id": CARD}] * 3000}), 413)
    text = client.request("POST", "/predict", '{"card_id": "x"}', {"Content-Type": "text/plain"})
    assert_error(text, 415, "unsupported_media_type")
    assert text.reason == "Unsupported Media Type"


def test_no_model_in_service_is_503_over_http(
    server_for: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    empty = server_for(LocalStore(tmp_path_factory.mktemp("empty")))
    health = empty.request("GET", "/health")
    assert (health.status, health.body["status"]) == (503, "unavailable")
    answer = empty.post("/predict", {"card_id": CARD})
    assert_error(answer, 503, "model_unavailable")
    assert int(answer.headers["retry-after"]) >= 1


@pytest.mark.parametrize(("raw", "status", "field"), HOSTILE_BODIES, ids=lambda v: str(v)[:30])
def test_hostile_bodies_over_http(client: Client, raw: str, status: int, field: str | None) -> None:
    answer = client.request("POST", "/predict", raw, {"Content-Type": "application/json"})
    assert_error(answer, status)


@pytest.mark.parametrize(
    "path",
    [
        "/cards/../../etc/passwd",
        "/cards/%2e%2e",
        "/cards/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/cards/..%5c..%5cwindows",
        "/cards/%00",
        "/cards/%E3%83%94%E3%82%AB",
        "/cards/%ff%fe",
        "/cards/" + "a" * 5000,
        "/cards?limit=%ff",
        "/cards?set=%00&q=%E2%80%AE",
        "/../../etc/passwd",
        "/predict/../health",
    ],
)
def test_hostile_paths_are_4xx(client: Client, path: str) -> None:
    answer = client.request("GET", path)
    assert 400 <= answer.status < 500 or (answer.status == 200 and path.startswith("/cards?"))
    assert isinstance(answer.body, dict)


@pytest.mark.parametrize("card_id", ["%E3%83%94%E3%82%AB", "%FF", "%22", "%5C", "a%2Fb"])
def test_a_percent_encoded_card_id_is_refused_by_name(client: Client, card_id: str) -> None:
    # API Gateway routes on the path as sent and hands the handler the card id still encoded:
    # an id in another script, bytes that are not UTF-8 (`%FF`) or an escaped `/` are card ids
    # the API refuses by name, not 404 no_route (nor, for `a%2Fb`, a path with no route).
    answer = client.request("GET", f"/cards/{card_id}")
    assert_error(answer, 422, "invalid_request")
    assert answer.body["details"][0]["field"] == "path.card_id"


class Recorder:
    """Stands in for the functions: keeps each event and answers 200."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def invoke(self, function: str, event: dict[str, Any]) -> dict[str, Any]:
        """Keep the event."""
        self.events.append(event)
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"}


def test_the_event_has_the_path_as_sent_and_the_query_decoded(
    server_for: Any, tmp_path: Path
) -> None:
    # As API Gateway (REST) builds it: `path` and `pathParameters` keep the client's
    # percent-escapes, the query string parameters are decoded. The server decoded the path.
    recorder = Recorder()
    client = server_for(LocalStore(tmp_path), recorder)
    assert client.request("GET", "/cards/sv1-25%5Fholo%2Fx%20y?set=%20sv1&q=a%2Bb+c").status == 200
    assert client.request("GET", "/cards/%E3%83%94").status == 200
    event, other = recorder.events
    assert event["path"] == event["requestContext"]["path"] == "/cards/sv1-25%5Fholo%2Fx%20y"
    assert event["pathParameters"] == {"card_id": "sv1-25%5Fholo%2Fx%20y"}
    assert event["resource"] == "/cards/{card_id}"
    assert event["queryStringParameters"] == {"set": " sv1", "q": "a+b c"}
    assert other["pathParameters"] == {"card_id": "%E3%83%94"}


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b'{"card_id": "\xff\xfe"}', {"Content-Type": "application/json"}, 400),
        (b"\x00\x01\x02", {"Content-Type": "application/json"}, 422),
        (b'{"card_id": "x"}', {"Content-Type": "application/x-www-form-urlencoded"}, 415),
        (b"card_id=x", {"Content-Type": "multipart/form-data"}, 415),
        (b"x" * (11 * 1024 * 1024), {"Content-Type": "application/json"}, 413),
    ],
    ids=["invalid utf-8", "control bytes", "form", "multipart without boundary", "11 MB"],
)
def test_bodies_that_are_not_json_text_are_4xx(
    client: Client, body: bytes, headers: dict[str, str], status: int
) -> None:
    answer = client.request("POST", "/predict", body, headers)
    assert answer.status == status, answer


def _deflate(data: bytes) -> bytes:
    return zlib.compress(data)


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [("gzip", gzip.compress), ("deflate", _deflate), ("GZIP, identity", gzip.compress)],
)
def test_a_gzip_or_deflate_body_is_decompressed_as_api_gateway_does(
    client: Client, encoding: str, encode: Any
) -> None:
    # API Gateway (REST) decompresses them before the function sees the body; here the body
    # reached the handler compressed: 400 "not UTF-8 text".
    body = encode(json.dumps({"card_id": CARD}).encode())
    headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
    answer = client.request("POST", "/predict", body, headers)
    assert answer.status == 200, answer
    assert answer.body["card_id"] == CARD


@pytest.mark.parametrize(
    ("body", "encoding"),
    [
        (gzip.compress(b'{"card_id": "x"}'), "br"),
        (b'{"card_id": "x"}', "compress"),
        (b'{"card_id": "x"}', "gzip"),  # not compressed as declared
        (gzip.compress(b'{"card_id": "x"}')[:-8], "gzip"),  # cut short
    ],
    ids=["br", "compress", "not gzip", "cut short"],
)
def test_a_coding_api_gateway_does_not_take_is_its_415(
    client: Client, body: bytes, encoding: str
) -> None:
    headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
    answer = client.request("POST", "/predict", body, headers)
    assert (answer.status, answer.body) == (415, {"message": "Unsupported Media Type"})


def test_a_body_that_inflates_past_the_limit_is_413(client: Client) -> None:
    bomb = gzip.compress(b" " * (11 * 1024 * 1024))
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    answer = client.request("POST", "/predict", bomb, headers)
    assert (answer.status, answer.body) == (413, {"message": "Request Too Long"})


def test_the_pokewatch_serve_command(tmp_path: Path) -> None:
    store = promoted_store(tmp_path / "store")
    process, port = serve_process(
        store,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert re.search(rf"http://127\.0\.0\.1:{port}", banner), banner
        client = Client(port)
        assert client.request("GET", "/health").body["model_version"] == "v1"
        answer = client.post("/predict", {"card_id": CARD, "market_price": "NaN"})
        assert_error(answer, 422, "invalid_request")
        answer = client.request("POST", "/predict", '{"card_id": "x", "market_price": NaN}')
        assert_error(answer, 422, "invalid_request")
    finally:
        process.terminate()
        process.communicate(timeout=10)  # reads the rest and closes the pipe
