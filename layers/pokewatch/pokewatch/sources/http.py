"""The one HTTP client of the API price sources: timeouts, retries with backoff, typed JSON.

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
from pydantic import BaseModel, ValidationError

from pokewatch.settings import Settings
from pokewatch.sources.base import SourceError, TransientSourceError

logger = logging.getLogger(__name__)

#: Statuses a later attempt may succeed on.
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Failures of the transport a later attempt may not meet: no connection, a timeout, and a body
#: cut short (the connection dropped mid-body, a compressed body that ends early), which
#: requests raises while reading it, as neither a ConnectionError nor a Timeout.
TRANSIENT_TRANSPORT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
USER_AGENT = "pokewatch/0.1 (+https://github.com/pokewatch)"
REDACTED = "***"

Params = Mapping[str, str | int | bool]


class HttpClient:
    """GETs JSON from one API: a base URL, headers (possibly holding a key), retries.

    `headers` is called on the first request, so that a key is read from SSM or Secrets
    Manager only when the source is used; `secrets` lists the values to redact from messages.
    `sleep` and `jitter` (a uniform draw in [0, 1)) are injectable for tests.
    """

    def __init__(
        self,
        base_url: str,
        *,
        headers: Callable[[], Mapping[str, str]] = dict,
        secrets: Callable[[], list[str]] = list,
        timeout_seconds: float = 10.0,
        max_attempts: int = 5,
        backoff_seconds: float = 1.0,
        backoff_max_seconds: float = 30.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.base_url = base_url.rstrip("/")
        self._headers = headers
        self._secrets = secrets
        self.timeout_seconds = timeout_seconds
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self._session = session or KeyKeepingSession(headers)
        self._sleep = sleep
        self._jitter = jitter

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
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self._session.get(
                    url, params=params, headers=headers, timeout=self.timeout_seconds
                )
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
