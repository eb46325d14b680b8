"""The one HTTP client of the API price sources: timeouts, retries with backoff, typed JSON.

Each request has a deadline (`deadline_seconds`) for all of it, its body read to the end: the
timeout of `requests` bounds each read only, so a server that trickles a byte every few seconds
held a collect function until its own timeout. A request past its deadline is a timeout.
Retries stop before the Lambda invocation's end (`pokewatch.invocation`), with a
`TransientSourceError` that names the last problem, rather than as the function's timeout.

Retried: connection errors, timeouts, bodies cut short and the statuses of `RETRYABLE_STATUSES`
(408, 425, 429, 500, 502, 503, 504; not every 5xx: 501 or 505 will not change), with
exponential backoff and full jitter (a random wait between 0 and `base * 2**attempt`, capped),
or the server's `Retry-After` (seconds or an HTTP date) when it sends one. When the attempts run
out, or the server asks for a longer pause than the cap, the client raises
`TransientSourceError`, so that the state machine's `Retry` takes over with its own, longer
backoff.
Any other 4xx (401, 403, 404, ...), a redirect loop and a body that is not the expected JSON
are `SourceError`: retrying cannot cure them.

API keys travel in headers only, and to the API's host only (`KeyKeepingSession`). Messages and
logs name the method, URL and status, never the headers, and any text that comes from the
network is redacted of the key before it is used.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
import urllib3
from pydantic import BaseModel, ValidationError

from pokewatch.invocation import seconds_left
from pokewatch.settings import Settings
from pokewatch.sources.base import SourceError, TransientSourceError

logger = logging.getLogger(__name__)

#: Statuses a later attempt may succeed on.
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Failures of the transport a later attempt may not meet: no connection, a timeout, and a body
#: cut short (the connection dropped mid-body, a compressed body that ends early), which
#: requests raises while reading it, as neither a ConnectionError nor a Timeout. The body is read
#: from urllib3 (`_read_body`), whose errors (a read timeout, a body cut short, a bad gzip
#: stream) reach the client unwrapped by requests.
TRANSIENT_TRANSPORT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    urllib3.exceptions.HTTPError,
)
#: Bytes asked for by one read of a body; a read returns what has arrived, up to this many.
READ_SIZE = 64 * 1024
USER_AGENT = "pokewatch/0.1 (+https://github.com/pokewatch)"
REDACTED = "***"

Params = Mapping[str, str | int | bool]


class HttpClient:
    """GETs JSON from one API: a base URL, headers (possibly holding a key), retries.

    `headers` is called on the first request, so that a key is read from SSM or Secrets
    Manager only when the source is used; `secrets` lists the values to redact from messages.
    `timeout_seconds` bounds each read, `deadline_seconds` each request as a whole.
    `sleep`, `jitter` (a uniform draw in [0, 1)) and `time_left` (the seconds the invocation
    has left, None: no limit) are injectable for tests.
    """

    def __init__(
        self,
        base_url: str,
        *,
        headers: Callable[[], Mapping[str, str]] = dict,
        secrets: Callable[[], list[str]] = list,
        timeout_seconds: float = 10.0,
        deadline_seconds: float = 60.0,
        max_attempts: int = 5,
        backoff_seconds: float = 1.0,
        backoff_max_seconds: float = 30.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        time_left: Callable[[], float | None] = seconds_left,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.base_url = base_url.rstrip("/")
        self._headers = headers
        self._secrets = secrets
        self.timeout_seconds = timeout_seconds
        self.deadline_seconds = deadline_seconds
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self._session = session or KeyKeepingSession(headers)
        self._sleep = sleep
        self._jitter = jitter
        self._time_left = time_left

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        base_url: str,
        *,
        headers: Callable[[], Mapping[str, str]] = dict,
        secrets: Callable[[], list[str]] = list,
    ) -> HttpClient:
        """A client with the timeouts and retry budget of `settings`."""
        return cls(
            base_url,
            headers=headers,
            secrets=secrets,
            timeout_seconds=settings.http_timeout_seconds,
            deadline_seconds=settings.http_deadline_seconds,
            max_attempts=settings.http_max_attempts,
            backoff_seconds=settings.http_backoff_seconds,
            backoff_max_seconds=settings.http_backoff_max_seconds,
        )

    def get_model[M: BaseModel](self, path: str, model: type[M], params: Params | None = None) -> M:
        """GET `path` (relative to the base URL) and validate the JSON body as `model`."""
        url = f"{self.base_url}/{path.lstrip('/')}"
        body = self.get_json(url, params)
        try:
            return model.model_validate(body)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise SourceError(
                f"GET {url}: unexpected response shape ({e.error_count()} errors, "
                f"first at {where}: {first['msg']})"
            ) from None

    def get_json(self, url: str, params: Params | None = None) -> Any:
        """GET an absolute URL and decode its JSON body, retrying what a retry may cure."""
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **self._headers()}
        problem = "no attempt"
        for attempt in range(1, self.max_attempts + 1):
            budget = self._budget()
            if budget <= 0:
                raise self._out_of_time(url, problem, attempt - 1)
            try:
                response = self._get(url, params, headers, budget)
            except TRANSIENT_TRANSPORT_ERRORS as e:
                # ConnectTimeout is both; either way the server may answer next time.
                problem = f"{type(e).__name__}: {self._redact(str(e))}"
                retry_after = None
            except requests.RequestException as e:
                # A redirect loop or a URL requests refuses: another attempt fails the same way.
                raise SourceError(
                    f"GET {url}: {type(e).__name__}: {self._redact(str(e))}"
                ) from None
            else:
                if response.ok:
                    return self._decode(response, url)
                if response.status_code not in RETRYABLE_STATUSES:
                    raise SourceError(
                        f"GET {url}: HTTP {response.status_code} {response.reason or ''}".rstrip()
                        + f": {self._snippet(response)}"
                    )
                problem = f"HTTP {response.status_code}"
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if attempt == self.max_attempts:
                raise TransientSourceError(
                    f"GET {url}: {problem}, gave up after {self.max_attempts} attempts"
                )
            if retry_after is not None and retry_after > self.backoff_max_seconds:
                # Sleeping that long would burn Lambda time: let the state machine wait.
                raise TransientSourceError(
                    f"GET {url}: {problem}, the server asks to retry after {retry_after:.0f}s"
                )
            delay = self._delay(attempt, retry_after)
            left = self._time_left()
            if left is not None and delay >= left:
                # No attempt would start after the wait: fail now, while the function can.
                raise self._out_of_time(url, problem, attempt)
            logger.warning(
                "GET %s: %s (attempt %d of %d), retrying in %.1fs",
                url,
                problem,
                attempt,
                self.max_attempts,
                delay,
            )
            self._sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")

    def _budget(self) -> float:
        """Seconds the next attempt may take: its deadline, or less when the invocation ends
        sooner."""
        left = self._time_left()
        return self.deadline_seconds if left is None else min(self.deadline_seconds, left)

    def _out_of_time(self, url: str, problem: str, attempts: int) -> TransientSourceError:
        return TransientSourceError(
            f"GET {url}: {problem}, stopped after {attempts} of {self.max_attempts} attempts: "
            "the function's time is nearly up"
        )

    def _get(
        self, url: str, params: Params | None, headers: Mapping[str, str], budget: float
    ) -> requests.Response:
        """The response to one GET, its body read, all within `budget` seconds."""
        deadline = time.monotonic() + budget
        wait = min(self.timeout_seconds, budget)
        response = self._session.get(url, params=params, headers=headers, timeout=wait, stream=True)
        try:
            body = self._read_body(response, deadline, budget)
        except BaseException:
            response.close()  # the connection is left mid-body: it cannot serve another request
            raise
        # What requests keeps a body it read itself in: `.json()` and `.text` decode it as usual.
        response._content = body
        return response

    def _read_body(self, response: requests.Response, deadline: float, budget: float) -> bytes:
        """The whole (decompressed) body, read as it arrives, the clock checked between reads
        and no read waiting past `deadline`; a requests.Timeout once it is reached."""
        chunks: list[bytes] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _past_deadline(budget, chunks)
            # The socket's timeout was set per read when the request started: shorten it.
            wait = min(self.timeout_seconds, left)
            sock = getattr(response.raw.connection, "sock", None)
            if sock is not None:
                sock.settimeout(wait)
            try:
                chunk = response.raw.read1(READ_SIZE, decode_content=True)
            except urllib3.exceptions.ReadTimeoutError:
                if wait < self.timeout_seconds:  # the deadline cut this read short
                    raise _past_deadline(budget, chunks) from None
                raise
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """The server's wish when it has one, else full jitter over an exponential ceiling."""
        if retry_after is not None:
            return retry_after
        ceiling = min(self.backoff_max_seconds, self.backoff_seconds * 2 ** (attempt - 1))
        return self._jitter() * ceiling

    def _decode(self, response: requests.Response, url: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise SourceError(
                f"GET {url}: HTTP {response.status_code} but the body is not JSON: "
                f"{self._snippet(response)}"
            ) from None

    def _snippet(self, response: requests.Response, limit: int = 200) -> str:
        """The start of a response body, for error messages (servers may echo a key)."""
        return self._redact(response.text[:limit].strip()) or "(empty body)"

    def _redact(self, text: str) -> str:
        for secret in self._secrets():
            if secret:
                text = text.replace(secret, REDACTED)
        return text


def _past_deadline(budget: float, chunks: list[bytes]) -> requests.ReadTimeout:
    return requests.ReadTimeout(
        f"the response was not whole within its {budget:.1f}s deadline "
        f"({sum(map(len, chunks))} bytes read)"
    )


class KeyKeepingSession(requests.Session):
    """A session that sends the API's own headers (its key) to the API's host only.

    requests drops `Authorization` from a redirect to another host, but not a header it does not
    know as a credential: pokemontcg.io's `X-Api-Key` followed a redirect anywhere."""

    def __init__(self, private_headers: Callable[[], Mapping[str, str]]) -> None:
        super().__init__()
        self._private_headers = private_headers

    def rebuild_auth(
        self, prepared_request: requests.PreparedRequest, response: requests.Response
    ) -> None:
        """requests' own stripping, and the private headers' when the host changes."""
        super().rebuild_auth(prepared_request, response)
        # Both URLs are set on a redirect; a missing one is read as another host.
        old, new = response.request.url or "", prepared_request.url or ""
        if self.should_strip_auth(old, new):
            for name in self._private_headers():
                prepared_request.headers.pop(name, None)


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT; a date without a zone is read as such
        when = when.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - now).total_seconds())
