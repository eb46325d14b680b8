"""The shared HTTP client: retries, backoff, Retry-After, errors that name status and URL only."""

from __future__ import annotations

import datetime as dt
import email.utils
import http.server
import logging
from collections.abc import Iterator
from typing import ClassVar

import pytest
import requests
import responses
from http_fixtures import local_http_server
from pydantic import BaseModel

from pokewatch.sources.base import SourceError, TransientSourceError
from pokewatch.sources.http import HttpClient, parse_retry_after

BASE = "https://api.example.test/v2"
URL = f"{BASE}/cards"
KEY = "sk-test-0123456789abcdef"


class Sleeps(list[float]):
    """A recording stand-in for `time.sleep`."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(sleeps: Sleeps) -> HttpClient:
    return HttpClient(
        BASE,
        headers=lambda: {"X-Api-Key": KEY},
        secrets=lambda: [KEY],
        max_attempts=3,
        backoff_seconds=1.0,
        backoff_max_seconds=30.0,
        sleep=sleeps,
        jitter=lambda: 0.5,
    )


@responses.activate
def test_success_sends_the_key_header_and_decodes_json(client: HttpClient) -> None:
    responses.get(URL, json={"data": [1, 2]})

    assert client.get_json(URL, {"page": 1}) == {"data": [1, 2]}
    request = responses.calls[0].request
    assert request.headers["X-Api-Key"] == KEY
    assert request.url == f"{URL}?page=1"


@responses.activate
def test_429_waits_the_retry_after_seconds(client: HttpClient, sleeps: Sleeps) -> None:
    responses.get(URL, status=429, headers={"Retry-After": "7"})
    responses.get(URL, json={"ok": True})

    assert client.get_json(URL) == {"ok": True}
    assert sleeps == [7.0]


@responses.activate
def test_429_waits_until_a_retry_after_http_date(client: HttpClient, sleeps: Sleeps) -> None:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=12)
    responses.get(URL, status=429, headers={"Retry-After": email.utils.format_datetime(when)})
    responses.get(URL, json={"ok": True})

    client.get_json(URL)

    [slept] = sleeps
    assert 9.0 <= slept <= 12.0


@responses.activate
def test_a_retry_after_beyond_the_cap_hands_over_to_the_state_machine(
    client: HttpClient, sleeps: Sleeps
) -> None:
    responses.get(URL, status=429, headers={"Retry-After": "3600"})

    with pytest.raises(TransientSourceError, match="3600s"):
        client.get_json(URL)
    assert sleeps == []
    assert len(responses.calls) == 1


@responses.activate
def test_500_then_success_backs_off_with_full_jitter(client: HttpClient, sleeps: Sleeps) -> None:
    responses.get(URL, status=500)
    responses.get(URL, status=503)
    responses.get(URL, json=[])

    assert client.get_json(URL) == []
    # jitter 0.5 of the ceilings 1 s and 2 s
    assert sleeps == [0.5, 1.0]


@responses.activate
def test_500_forever_raises_transient_after_max_attempts(
    client: HttpClient, sleeps: Sleeps
) -> None:
    responses.get(URL, status=500)

    with pytest.raises(TransientSourceError) as caught:
        client.get_json(URL)

    assert "HTTP 500" in str(caught.value) and URL in str(caught.value)
    assert "3 attempts" in str(caught.value)
    assert len(responses.calls) == 3
    assert len(sleeps) == 2


def test_the_backoff_ceiling_grows_exponentially_up_to_the_cap() -> None:
    client = HttpClient(BASE, backoff_seconds=1.0, backoff_max_seconds=5.0, jitter=lambda: 1.0)

    assert [client._delay(attempt, None) for attempt in range(1, 6)] == [1, 2, 4, 5, 5]


@pytest.mark.parametrize(
    "error",
    [requests.ConnectTimeout("connect timed out"), requests.ReadTimeout("read timed out")],
)
@responses.activate
def test_timeouts_are_retried_then_transient(
    client: HttpClient, sleeps: Sleeps, error: Exception
) -> None:
    responses.get(URL, body=error)

    with pytest.raises(TransientSourceError, match=type(error).__name__):
        client.get_json(URL)
    assert len(responses.calls) == 3


@responses.activate
def test_a_connection_error_then_success(client: HttpClient, sleeps: Sleeps) -> None:
    responses.get(URL, body=requests.ConnectionError("connection refused"))
    responses.get(URL, json={"ok": 1})

    assert client.get_json(URL) == {"ok": 1}
    assert len(sleeps) == 1


@pytest.mark.parametrize("status", [401, 403, 404])
@responses.activate
def test_client_errors_are_not_retried_and_name_status_and_url(
    client: HttpClient, sleeps: Sleeps, status: int
) -> None:
    responses.get(URL, status=status, json={"error": "nope"})

    with pytest.raises(SourceError) as caught:
        client.get_json(URL)

    assert not isinstance(caught.value, TransientSourceError)
    assert f"HTTP {status}" in str(caught.value)
    assert URL in str(caught.value)
    assert len(responses.calls) == 1
    assert sleeps == []


@responses.activate
def test_malformed_json_is_a_source_error(client: HttpClient) -> None:
    responses.get(URL, body="<html>gateway hiccup</html>", content_type="application/json")

    with pytest.raises(SourceError, match="not JSON") as caught:
        client.get_json(URL)
    assert not isinstance(caught.value, TransientSourceError)


class Shape(BaseModel):
    data: list[int]


@responses.activate
def test_an_unexpected_shape_is_a_source_error_naming_the_field(client: HttpClient) -> None:
    responses.get(URL, json={"data": ["x"]})

    with pytest.raises(SourceError, match=r"data\.0"):
        client.get_model("cards", Shape)


@responses.activate
def test_the_key_never_reaches_logs_or_exceptions(
    client: HttpClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # A server that echoes the key back in its error body, after a retried failure.
    responses.get(URL, body=requests.ConnectionError(f"refused for key {KEY}"))
    responses.get(URL, status=401, body=f'{{"error": "invalid key {KEY}"}}')

    with pytest.raises(SourceError) as caught:
        client.get_json(URL)

    assert "HTTP 401" in str(caught.value)
    assert KEY not in str(caught.value)
    assert "***" in str(caught.value)
    assert caplog.records, "the retry is logged"
    assert KEY not in caplog.text


def test_parse_retry_after() -> None:
    now = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after("Sat, 01 Jun 2024 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Sat, 01 Jun 2024 11:00:00 GMT", now) == 0.0  # in the past
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("", now) is None
    assert parse_retry_after(None, now) is None


class _AwkwardServer(http.server.BaseHTTPRequestHandler):
    """Answers `/loop` with a redirect to itself, `/moved` with a redirect to the same server
    under another host name (`localhost`), and anything else with a body that ends before its
    Content-Length on the first request and whole on the next; records the keys it is sent."""

    requests_seen = 0
    keys_seen: ClassVar[list[tuple[str, str | None]]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass  # the test output stays clean

    def do_GET(self) -> None:
        type(self).keys_seen.append((self.headers["Host"], self.headers["X-Api-Key"]))
        if self.path.startswith("/moved"):
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{self.server.server_address[1]}/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/loop"):
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        type(self).requests_seen += 1
        body = b'{"data": [1, 2]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if type(self).requests_seen == 1:
            # The connection drops mid-body: a proxy restarting, a server crashing.
            self.send_header("Content-Length", str(len(body) + 100))
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def local_server() -> Iterator[str]:
    _AwkwardServer.requests_seen = 0
    _AwkwardServer.keys_seen = []
    with local_http_server(_AwkwardServer) as url:
        yield url


def test_a_body_cut_short_is_retried(local_server: str, sleeps: Sleeps) -> None:
    # requests raises it while reading the body, as neither a ConnectionError nor a Timeout:
    # it escaped the client as a bare ChunkedEncodingError, failing the set without a retry.
    client = HttpClient(local_server, sleep=sleeps, max_attempts=3, jitter=lambda: 0.5)

    assert client.get_json(f"{local_server}/cards") == {"data": [1, 2]}
    assert _AwkwardServer.requests_seen == 2 and len(sleeps) == 1


def test_a_redirect_loop_is_a_source_error_naming_the_url(local_server: str) -> None:
    client = HttpClient(local_server, sleep=lambda _: None)

    with pytest.raises(SourceError, match=rf"GET {local_server}/loop: TooManyRedirects"):
        client.get_json(f"{local_server}/loop")


def test_the_key_does_not_follow_a_redirect_to_another_host(local_server: str) -> None:
    # requests drops only `Authorization` on a redirect to another host: X-Api-Key followed it.
    client = HttpClient(
        local_server, headers=lambda: {"X-Api-Key": KEY}, sleep=lambda _: None, max_attempts=2
    )

    assert client.get_json(f"{local_server}/moved") == {"data": [1, 2]}
    port = local_server.rsplit(":", 1)[1]
    keys_by_host: dict[str, set[str | None]] = {}
    for host, key in _AwkwardServer.keys_seen:
        keys_by_host.setdefault(host, set()).add(key)
    assert keys_by_host == {f"127.0.0.1:{port}": {KEY}, f"localhost:{port}": {None}}
