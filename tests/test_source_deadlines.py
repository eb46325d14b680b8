"""Deadlines of the API sources against a real local server that trickles its answer: each
request has one for all of it, and the retries of one collect invocation stop before the
function's own timeout, failing with the source's error naming the set."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import http.server
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import responses
from http_fixtures import local_http_server

from pokewatch import invocation
from pokewatch.settings import Settings
from pokewatch.sources.base import TransientSourceError
from pokewatch.sources.http import HttpClient
from pokewatch_local.lambda_runtime import LocalLambda
from pokewatch_local.runner import QUIET_LOGS
from pokewatch_local.template import SamTemplate

#: A valid (empty) pokemontcg.io page: a client that waits for all of it succeeds.
PAGE = json.dumps({"data": [], "page": 1, "pageSize": 250, "count": 0, "totalCount": 0}).encode()
#: A byte every 30 ms: each read gets one long before any read timeout; the whole page takes
#: about 2 s, so that a client without a deadline succeeds, slowly, instead of hanging the test.
INTERVAL = 0.03


class _Trickle(http.server.BaseHTTPRequestHandler):
    """Answers 200 with `PAGE`, one byte every `INTERVAL` seconds, or on `/gzip` at once,
    compressed, in chunks; counts the requests and the connections they came on."""

    protocol_version = "HTTP/1.1"  # for chunked bodies
    requests_seen = 0
    connections: ClassVar[set[tuple[str, int]]] = set()

    def log_message(self, format: str, *args: object) -> None:
        pass  # the test output stays clean

    def do_GET(self) -> None:
        type(self).requests_seen += 1
        type(self).connections.add(self.client_address)
        if self.path.startswith("/gzip"):
            self._gzipped_chunks()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        try:
            for byte in PAGE:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(INTERVAL)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up: what the tests want

    def _gzipped_chunks(self) -> None:
        body = gzip.compress(PAGE)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        third = len(body) // 3
        for chunk in (body[:third], body[third : 2 * third], body[2 * third :], b""):
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")


@pytest.fixture
def trickling() -> Iterator[str]:
    _Trickle.requests_seen = 0
    _Trickle.connections = set()
    with local_http_server(_Trickle) as url:
        yield url


def test_a_trickling_body_times_out_at_the_deadline_and_is_retried(trickling: str) -> None:
    # The read timeout (5 s) never trips: a byte arrives every 30 ms. The request held the
    # function until the whole body had come, however long that took.
    client = HttpClient(
        trickling, timeout_seconds=5, deadline_seconds=0.25, max_attempts=2, sleep=lambda _: None
    )

    started = time.monotonic()
    with pytest.raises(TransientSourceError) as caught:
        client.get_json(f"{trickling}/cards")

    assert time.monotonic() - started < 1.5  # two attempts of 0.25 s, not the 2 s body
    message = str(caught.value)
    assert "ReadTimeout" in message and "0.2s deadline" in message
    assert "gave up after 2 attempts" in message
    assert _Trickle.requests_seen == 2


def test_a_compressed_chunked_body_is_read_whole(trickling: str) -> None:
    # The body is read from urllib3 rather than by requests: it must still be decompressed.
    client = HttpClient(trickling, deadline_seconds=2)

    assert client.get_json(f"{trickling}/gzip") == json.loads(PAGE)


def test_a_body_read_whole_leaves_its_connection_to_the_next_request(trickling: str) -> None:
    # The client reads each body itself: read to its end, the connection goes back to the pool,
    # and a collect's hundreds of pages do not each open a connection (a TLS handshake each).
    client = HttpClient(trickling, deadline_seconds=2)

    for _ in range(3):
        client.get_json(f"{trickling}/gzip")

    assert _Trickle.requests_seen == 3
    assert len(_Trickle.connections) == 1


def test_the_deadline_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POKEWATCH_HTTP_DEADLINE_SECONDS", "12.5")

    client = HttpClient.from_settings(Settings(), "https://api.example.test")

    assert client.deadline_seconds == 12.5
    with pytest.raises(ValueError, match="http_deadline_seconds"):
        Settings(http_deadline_seconds=0)


def test_retries_stop_before_the_invocation_ends(trickling: str) -> None:
    # A deadline longer than the invocation's time left: the time left bounds the attempt.
    end = time.monotonic() + 0.4
    client = HttpClient(
        trickling,
        deadline_seconds=30,
        max_attempts=5,
        sleep=lambda _: None,
        time_left=lambda: end - time.monotonic(),
    )

    with pytest.raises(TransientSourceError) as caught:
        client.get_json(f"{trickling}/cards")

    assert time.monotonic() < end + 0.5
    message = str(caught.value)
    assert "ReadTimeout" in message and "the function's time is nearly up" in message
    assert "stopped after 1 of 5 attempts" in message


@responses.activate
def test_no_backoff_waits_past_the_invocations_end() -> None:
    # A wait as long as the time left would only end in the function's timeout: fail now.
    responses.get("https://api.example.test/cards", status=503)
    sleeps: list[float] = []
    client = HttpClient(
        "https://api.example.test",
        max_attempts=3,
        backoff_seconds=2.0,
        sleep=sleeps.append,
        jitter=lambda: 1.0,
        time_left=lambda: 1.5,
    )

    with pytest.raises(TransientSourceError, match="HTTP 503, stopped after 1 of 3 attempts"):
        client.get_json("https://api.example.test/cards")
    assert sleeps == []
    assert len(responses.calls) == 1


def test_outside_an_invocation_there_is_no_limit() -> None:
    assert invocation.seconds_left() is None
    with invocation.time_limit(invocation.MARGIN_SECONDS + 5):
        left = invocation.seconds_left()
        assert left is not None and 4 < left <= 5
    assert invocation.seconds_left() is None


def test_the_collect_function_fails_naming_the_set_before_its_timeout(
    repo: Path, tmp_path: Path, trickling: str
) -> None:
    # The real collect handler, with a timeout that leaves it about one second after the margin;
    # the deadline of each request (0.3 s, from the environment) lets it try three or four times.
    template = SamTemplate(repo / "template.yaml")
    collect = dataclasses.replace(
        template.function("CollectFunction"), timeout=int(invocation.MARGIN_SECONDS) + 1
    )
    lambdas = LocalLambda(
        template,
        {
            **QUIET_LOGS,
            "POKEWATCH_STORE": str(tmp_path / "store"),
            "POKEWATCH_POKEMONTCG_URL": trickling,
            "POKEWATCH_POKEMONTCG_API_KEY_PARAMETER": "",
            "POKEWATCH_HTTP_DEADLINE_SECONDS": "0.3",
            "POKEWATCH_HTTP_MAX_ATTEMPTS": "10",
            "POKEWATCH_HTTP_BACKOFF_SECONDS": "0",
        },
    )
    day = dt.date(2024, 6, 1).isoformat()
    event = {
        "run": {"run_id": "r1", "source": "pokemontcg", "as_of": day},
        "set_id": "sv1",
        "start": day,
        "end": day,
    }

    started = time.monotonic()
    try:
        with pytest.raises(TransientSourceError) as caught:
            lambdas.invoke(collect, event)
    finally:
        lambdas.restore_environment()

    # About a second: the function's time less the margin, long before its timeout.
    assert time.monotonic() - started < 3
    message = str(caught.value)
    assert message.startswith("pokemontcg set sv1: GET ")
    assert "the function's time is nearly up" in message
    # Each request ended at its own deadline: one 60 s default request would have used it all.
    assert 2 <= _Trickle.requests_seen <= 4
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("*.parquet"))
