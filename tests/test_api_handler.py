"""The prediction API through its Lambda handler, with API Gateway (REST) proxy events."""

from __future__ import annotations

import base64
import datetime as dt
import gc
import gzip
import io
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from api_fixtures import (
    EXPECTED_OVER_FAIR,
    HANDLER_PATH,
    HOSTILE_BODIES,
    LAST_DAY,
    LambdaContext,
    api_event,
    card_id_of,
    first_day_of,
    header,
    invoke,
    load_handler,
    promote_model,
    promoted_store,
    put_model,
    quiet_environment,
)
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from pokewatch import keys, observability, registry
from pokewatch.model_loader import ModelLoader, ModelUnavailable
from pokewatch.store import LocalStore, open_store

CARD = card_id_of(0)
LATE_CARD = card_id_of(3)  # its history starts half way through
N_CARDS = 24


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    """A local store with model v1 in service."""
    return promoted_store(tmp_path / "store")


@pytest.fixture
def api(store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The API function, cold, reading `store`."""
    quiet_environment(monkeypatch)
    return load_handler(store.uri)


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def health_when(api: ModuleType, ready: Callable[[dict], bool]) -> tuple[int, dict]:
    """`/health` once it is `ready` (or after 10 s): the request that finds the TTL over is
    answered from the table in hand while the loader refreshes in the background."""
    deadline = time.monotonic() + 10
    while True:
        status, health = invoke(api, "GET", "/health")
        if ready(health) or time.monotonic() > deadline:
            return status, health
        time.sleep(0.01)


def use_clock(api: ModuleType, store: LocalStore, ttl: float) -> FakeClock:
    """Replace the handler's loader with one on a fake clock (as a fresh cold start)."""
    clock = FakeClock()
    api.loader = ModelLoader(lambda: open_store(store.uri), ttl, clock=clock)
    return clock


def v1_served_then_v2_promoted(api: ModuleType, store: LocalStore) -> FakeClock:
    """A loader on a fake clock (TTL 60 s) serving v1, after which v2 (5 cards) is promoted."""
    clock = use_clock(api, store, ttl=60)
    assert invoke(api, "GET", "/health")[1]["model_version"] == "v1"
    promote_model(store, "v2", n_cards=5)
    return clock


def assert_error(status: int, body: object, expected_status: int, code: str | None = None) -> None:
    """An error answer: the status, and JSON naming the problem."""
    assert status == expected_status, body
    assert isinstance(body, dict) and body["message"], body
    if code:
        assert body["error"] == code, body


# --- health --------------------------------------------------------------------------------------
def test_health_names_the_model_in_service(api: ModuleType) -> None:
    status, body = invoke(api, "GET", "/health")
    assert status == 200
    assert body["status"] == "ok"
    assert body["model_version"] == "v1"
    assert body["data_as_of"] == LAST_DAY.isoformat()
    assert body["trained_at"].startswith("2025-07-01T03:00")
    assert body["cards"] == N_CARDS


def test_no_model_in_service_is_503_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    quiet_environment(monkeypatch)
    empty = LocalStore(tmp_path / "empty")
    api = load_handler(empty.uri)
    status, body = invoke(api, "GET", "/health")
    assert status == 503
    assert body["status"] == "unavailable"
    assert keys.CURRENT_MODEL in body["detail"]
    event = api_event("POST", "/predict", body={"card_id": CARD})
    response = api.lambda_handler(event, LambdaContext())
    assert response["statusCode"] == 503
    assert int(header(response, "Retry-After")) >= 1
    assert_error(503, json.loads(response["body"]), 503, "model_unavailable")
    for path in ("/cards", f"/cards/{CARD}"):
        assert_error(*invoke(api, "GET", path), 503, "model_unavailable")


# --- listing -------------------------------------------------------------------------------------
def test_listing_pages_through_every_card_once_in_id_order(api: ModuleType) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": "5", **({"cursor": cursor} if cursor else {})}
        status, page = invoke(api, "GET", "/cards", query=query)
        assert status == 200
        assert page["total"] == N_CARDS
        assert len(page["items"]) <= 5
        seen += [item["card_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(card_id_of(i) for i in range(N_CARDS))
    first = page["items"][0]
    assert set(first) == {
        "card_id",
        "name",
        "set_id",
        "set_name",
        "rarity",
        "variant",
        "last_price",
        "last_date",
    }
    assert first["last_date"] == LAST_DAY.isoformat()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"set": "sv2"}, {card_id_of(i) for i in range(1, N_CARDS, 3)}),
        ({"set": "paldea évolved"}, {card_id_of(i) for i in range(1, N_CARDS, 3)}),
        ({"q": "FLABÉBÉ"}, {card_id_of(i) for i in range(1, N_CARDS, 6)}),
        # The same text with its accents as combining marks (NFD, as some keyboards and file
        # names give it) found nothing.
        ({"q": "flabe\u0301be\u0301"}, {card_id_of(i) for i in range(1, N_CARDS, 6)}),
        ({"set": "Paldea E\u0301volved"}, {card_id_of(i) for i in range(1, N_CARDS, 3)}),
        ({"q": "flabébé", "set": "base1"}, set()),
        ({"q": "0003_holo"}, {card_id_of(3)}),
        ({"q": "nidoran♀ 4"}, {card_id_of(4)}),
        ({"q": ""}, {card_id_of(i) for i in range(N_CARDS)}),
        ({"set": ""}, {card_id_of(i) for i in range(N_CARDS)}),
        ({"set": "", "q": "FLABÉBÉ"}, {card_id_of(i) for i in range(1, N_CARDS, 6)}),
        # Spaces around a value (pasted with it) are not part of it: `?set=%20sv2` was empty.
        ({"set": " sv2"}, {card_id_of(i) for i in range(1, N_CARDS, 3)}),
        ({"set": "Paldea Évolved \t"}, {card_id_of(i) for i in range(1, N_CARDS, 3)}),
        ({"q": " flabébé "}, {card_id_of(i) for i in range(1, N_CARDS, 6)}),
        ({"set": " ", "q": "  "}, {card_id_of(i) for i in range(N_CARDS)}),
    ],
)
def test_listing_filters_by_set_and_name(
    api: ModuleType, query: dict[str, str], expected: set[str]
) -> None:
    status, page = invoke(api, "GET", "/cards", query={**query, "limit": "500"})
    assert status == 200
    assert {item["card_id"] for item in page["items"]} == expected
    assert page["total"] == len(expected)
    assert page["next_cursor"] is None


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ({"limit": "0"}, 422, "invalid_request"),
        ({"limit": "501"}, 422, "invalid_request"),
        ({"limit": "ten"}, 422, "invalid_request"),
        ({"limit": "1e3"}, 422, "invalid_request"),
        ({"q": "x" * 101}, 422, "invalid_request"),
        ({"cursor": "not-a-cursor"}, 400, "invalid_cursor"),
        ({"cursor": "eyJvIjogM30="}, 400, "invalid_cursor"),  # base64 JSON, but not ours
        ({"cursor": "é"}, 400, "invalid_cursor"),
    ],
)
def test_listing_rejects_bad_parameters(
    api: ModuleType, query: dict[str, str], status: int, code: str
) -> None:
    response_status, body = invoke(api, "GET", "/cards", query=query)
    assert_error(response_status, body, status, code)
    if status == 422:
        assert body["details"][0]["field"].startswith("query.")


@pytest.mark.parametrize(
    "limit", ["1_0", " 10", "10 ", "10\n", "+10", "-0", "10.0", "１０", "0" * 20 + "1", "", "0x10"]
)
def test_a_limit_is_plain_decimal_digits(api: ModuleType, limit: str) -> None:
    # pydantic parses text as int() does: `1_0`, ` 10`, `+10`, `10.0` and any number of leading
    # zeros were read as a limit of 10 (or 1), a typo answered as some other page size.
    status, body = invoke(api, "GET", "/cards", query={"limit": limit})
    assert_error(status, body, 422, "invalid_request")
    assert body["details"] == [
        {
            "field": "query.limit",
            "problem": "must be a whole number of at most 9 digits 0-9, e.g. 50",
        }
    ]
    assert invoke(api, "GET", "/cards", query={"limit": "010"})[1]["items"][9]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/health", None),
        ("GET", "/cards", None),
        ("GET", f"/cards/{CARD}", None),
        ("POST", "/predict", {"card_id": CARD}),
        ("POST", "/predict/batch", {"items": [{"card_id": CARD}]}),
        ("GET", "/openapi.json", None),
        ("GET", "/swagger", None),
    ],
)
def test_an_unknown_query_parameter_is_a_422_naming_it(
    api: ModuleType, method: str, path: str, body: Any
) -> None:
    # It was ignored: `/cards?st=sv1` (a typo of `set`) listed every card.
    status, answer = invoke(api, method, path, body=body, query={"st": "sv1"})
    assert_error(status, answer, 422, "invalid_request")
    assert [d["field"] for d in answer["details"]] == ["query.st"]
    assert answer["details"][0]["problem"].startswith("unknown query parameter; this route takes")


def test_the_parameters_a_route_takes_are_named_with_an_unknown_one(api: ModuleType) -> None:
    status, body = invoke(api, "GET", "/cards", query={"st": "sv1", "limit": "ten"})
    assert_error(status, body, 422, "invalid_request")
    assert [d["field"] for d in body["details"]] == ["query.st", "query.limit"]
    assert body["details"][0]["problem"].endswith("takes limit, cursor, set, q")
    # The parameters routes do take are still answered.
    assert invoke(api, "GET", "/cards", query={"limit": "2", "set": "sv1", "q": "a"})[0] == 200
    assert invoke(api, "GET", "/swagger", query={"format": "json"})[0] == 200
    # A route that does not exist is still no route, whatever its query.
    assert_error(*invoke(api, "GET", "/nope", query={"st": "sv1"}), 404, "no_route")


def test_a_repeated_query_parameter_is_a_422_naming_it(api: ModuleType) -> None:
    # `?set=sv1&set=sv2` was validated as a list ("Input should be a valid string"), and with
    # single values only Powertools joins them with commas.
    event = api_event("GET", "/cards", query={"set": "sv2", "limit": "3"})
    event["multiValueQueryStringParameters"] = {"set": ["sv1", "sv2"], "limit": ["3"]}
    response = api.lambda_handler(event, LambdaContext())
    body = json.loads(response["body"])
    assert_error(response["statusCode"], body, 422, "invalid_request")
    assert body["details"] == [{"field": "query.set", "problem": "given 2 times; give it once"}]


def _cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "tamper",
    [
        lambda cursor: cursor + "!!",  # characters outside base64 were dropped, not refused
        lambda cursor: cursor.rstrip("=") + "=" * 5,
        lambda _: _cursor_of('{"after": ""}'),  # started the listing again
        lambda _: _cursor_of('{"after": "../../x"}'),
        lambda _: _cursor_of('{"after": "' + "a" * 129 + '"}'),
        lambda _: _cursor_of(f'{{"after": "{card_id_of(4)}", "set": "sv1"}}'),
        lambda _: _cursor_of(f'{{"after":"{card_id_of(4)}"}}'),
    ],
    ids=["junk", "padding", "empty", "path", "long", "extra key", "not as written"],
)
def test_a_tampered_cursor_is_a_400_naming_it(
    api: ModuleType, tamper: Callable[[str], str]
) -> None:
    # Each was answered as a page: a client whose cursor was cut or altered did not learn of it.
    _, page = invoke(api, "GET", "/cards", query={"limit": "3"})
    status, body = invoke(api, "GET", "/cards", query={"cursor": tamper(page["next_cursor"])})
    assert_error(status, body, 400, "invalid_cursor")
    assert [d["field"] for d in body["details"]] == ["query.cursor"]


def test_a_cursor_of_a_card_no_longer_served_continues_after_it(
    api: ModuleType, store: LocalStore
) -> None:
    # Keyset paging: the cursor of a model that served a card another model does not still
    # pages on, in card id order.
    status, page = invoke(api, "GET", "/cards", query={"cursor": _cursor_of('{"after": "sv1-0"}')})
    assert status == 200 and page["items"][0]["card_id"] > "sv1-0"


# --- card detail ---------------------------------------------------------------------------------
def test_card_detail_has_recent_history_and_latest_prediction(api: ModuleType) -> None:
    status, card = invoke(api, "GET", f"/cards/{CARD}")
    assert status == 200
    assert card["card_id"] == CARD
    assert card["name"] == "Pikachu 0"
    history = card["history"]
    assert 1 < len(history) <= 60
    assert [p["date"] for p in history] == sorted(p["date"] for p in history)
    assert history[-1]["date"] == card["last_date"] == LAST_DAY.isoformat()
    latest = card["prediction"]
    assert latest["date"] == history[-1]["date"]
    assert latest["fair_price"] == history[-1]["fair_price"]
    assert latest["model_version"] == "v1"


@pytest.mark.parametrize(
    ("card_id", "status"),
    [
        ("nope-1_holofoil", 404),
        ("..", 422),
        ("%2e%2e", 422),
        ("..%2f..%2fetc%2fpasswd", 422),
        ("ピカチュウ", 422),
        ("x" * 129, 422),
        ("a;drop table", 422),
    ],
)
def test_card_detail_of_unknown_or_invalid_ids_is_4xx(
    api: ModuleType, card_id: str, status: int
) -> None:
    assert_error(*invoke(api, "GET", f"/cards/{card_id}"), status)


@pytest.mark.parametrize("card_id", ["\ufffd", "%FF", 'a"b', "a\\b", "a`b", "sv1-1\x00", "a/b"])
def test_any_invalid_card_id_in_the_path_is_the_422_naming_it(
    api: ModuleType, card_id: str
) -> None:
    # Powertools' route pattern takes only word characters and some of URL syntax: `/cards/%FF`
    # (decoded to U+FFFD) or a `"` in the id found no route (404 no_route), where `/cards/a;b`
    # was a 422 naming path.card_id.
    status, body = invoke(api, "GET", f"/cards/{card_id}")
    assert_error(status, body, 422, "invalid_request")
    assert body["details"] == invoke(api, "GET", "/cards/a;b")[1]["details"]
    assert [d["field"] for d in body["details"]] == ["path.card_id"]


def test_a_percent_encoded_card_id_is_the_card(api: ModuleType) -> None:
    # API Gateway (REST) passes the path as sent: `%5F` for `_` was a 422 for a valid id.
    plain = invoke(api, "GET", f"/cards/{CARD}")
    assert plain[0] == 200
    assert invoke(api, "GET", "/cards/" + CARD.replace("_", "%5F").replace("-", "%2d")) == plain


def test_an_invalid_card_id_is_explained_with_an_example_of_a_valid_one(api: ModuleType) -> None:
    # The message was the regex alone. Path, body and batch item say the same.
    problem = (
        "must be a card print id such as sv1-25_holofoil: letters, digits, '.', '_' or '-', "
        "starting with a letter or digit"
    )
    _, in_path = invoke(api, "GET", "/cards/-sv1")
    assert in_path["details"] == [{"field": "path.card_id", "problem": problem}]
    _, in_body = invoke(api, "POST", "/predict", body={"card_id": "-sv1"})
    assert in_body["details"] == [{"field": "card_id", "problem": problem}]
    _, batch = invoke(api, "POST", "/predict/batch", body={"items": [{"card_id": "-sv1"}]})
    assert batch["results"][0]["message"] == f"card_id: {problem}"
    # What is not text, or too long, is still told so.
    _, number = invoke(api, "POST", "/predict", body={"card_id": 42})
    assert number["details"][0]["problem"] == "Input should be a valid string"
    _, long = invoke(api, "POST", "/predict", body={"card_id": "a" * 129})
    assert long["details"][0]["problem"] == "String should have at most 128 characters"


# --- predict -------------------------------------------------------------------------------------
def test_predict_answers_at_the_latest_price_by_default(api: ModuleType) -> None:
    status, answer = invoke(api, "POST", "/predict", body={"card_id": CARD})
    assert status == 200
    _, card = invoke(api, "GET", f"/cards/{CARD}")
    assert answer == card["prediction"]
    assert answer["date"] == LAST_DAY.isoformat()
    assert answer["fair_price_low"] <= answer["fair_price"] <= answer["fair_price_high"]
    assert answer["horizon_days"] == 28
    assert answer["expected_price"] == pytest.approx(
        answer["fair_price"] * EXPECTED_OVER_FAIR, abs=0.01
    )
    # The answer's prices are rounded to cents; the deviation is of the unrounded ones.
    deviation = (answer["market_price"] - answer["expected_price"]) / answer["expected_price"]
    assert answer["deviation_pct"] == pytest.approx(deviation, abs=5e-3)


def test_predict_at_a_date_uses_the_latest_row_on_or_before_it(api: ModuleType) -> None:
    _, card = invoke(api, "GET", f"/cards/{CARD}")
    day = card["history"][-10]
    status, answer = invoke(api, "POST", "/predict", body={"card_id": CARD, "date": day["date"]})
    assert status == 200
    assert answer["date"] == day["date"]
    assert answer["fair_price"] == day["fair_price"]
    assert answer["market_price"] == day["market_price"]
    later = (LAST_DAY + dt.timedelta(days=400)).isoformat()
    _, answer = invoke(api, "POST", "/predict", body={"card_id": CARD, "date": later})
    assert answer["date"] == LAST_DAY.isoformat()


@pytest.mark.parametrize(
    "date", ["20240101", 1704067200, "2024-01-01T00:00:00", "２０２４-０１-０１", "٢٠٢٤-٠١-٠١"]
)
def test_a_date_is_a_day_written_yyyy_mm_dd(api: ModuleType, date: object) -> None:
    # pydantic reads numbers and digit strings as seconds since 1970: "20240101" was refused as
    # a time of day on 1970-08-23, and 1704067200 answered as 2024-01-01. Digits of other
    # scripts passed the YYYY-MM-DD check and were refused as "invalid character in year".
    status, body = invoke(api, "POST", "/predict", body={"card_id": CARD, "date": date})
    assert_error(status, body, 422, "invalid_request")
    assert "YYYY-MM-DD" in body["details"][0]["problem"], body
    _, batch = invoke(
        api, "POST", "/predict/batch", body={"items": [{"card_id": CARD, "date": date}]}
    )
    assert batch["results"][0]["status"] == 422
    assert "YYYY-MM-DD" in batch["results"][0]["message"], batch


@pytest.mark.parametrize(
    ("factor", "signal"),
    [(0.5, "BUY"), (0.89, "BUY"), (0.92, "HOLD"), (1.0, "HOLD"), (1.14, "HOLD"), (1.16, "SELL")],
)
def test_predict_at_an_offered_price_gives_its_signal_against_the_expected_price(
    api: ModuleType, factor: float, signal: str
) -> None:
    _, latest = invoke(api, "POST", "/predict", body={"card_id": CARD})
    offered = round(latest["expected_price"] * factor, 2)
    body = {"card_id": CARD, "market_price": offered}
    status, answer = invoke(api, "POST", "/predict", body=body)
    assert status == 200
    assert answer["market_price"] == offered
    assert answer["signal"] == signal


def test_predict_unknown_card_or_no_data_by_date_is_404(api: ModuleType) -> None:
    status, body = invoke(api, "POST", "/predict", body={"card_id": "nope-1_holofoil"})
    assert_error(status, body, 404, "not_found")
    assert "nope-1_holofoil" in body["message"]
    before = (first_day_of(3, 30) - dt.timedelta(days=1)).isoformat()
    status, body = invoke(api, "POST", "/predict", body={"card_id": LATE_CARD, "date": before})
    assert_error(status, body, 404, "not_found")
    assert before in body["message"]
    assert f"among the days this model serves (from {first_day_of(3, 30)})" in body["message"]


# --- hostile and malformed input: always 4xx ------------------------------------------------------
@pytest.mark.parametrize(("raw", "status", "field"), HOSTILE_BODIES, ids=lambda v: str(v)[:30])
def test_hostile_predict_bodies_are_4xx_naming_the_problem(
    api: ModuleType, raw: str, status: int, field: str | None
) -> None:
    response_status, body = invoke(api, "POST", "/predict", raw_body=raw)
    assert_error(response_status, body, status)
    if field:
        assert field in [d["field"] for d in body["details"]], body


@pytest.mark.parametrize(
    ("price", "problem"),
    [
        ("1" + "0" * 40, "Input should be less than 10000000"),
        # Past a float: 4,000 digits were "Input should be a valid number", 1e999 (infinity)
        # "Input should be a finite number".
        ("1" + "0" * 4_000, "Input should be less than 10000000"),
        ("1e999", "Input should be less than 10000000"),
        ("-1" + "0" * 4_000, "Input should be greater than or equal to 0.01"),
        ("-1e999", "Input should be greater than or equal to 0.01"),
    ],
    ids=["40 digits", "4000 digits", "1e999", "-4000 digits", "-1e999"],
)
def test_a_price_beyond_the_bounds_is_told_the_bound(
    api: ModuleType, price: str, problem: str
) -> None:
    raw = f'{{"card_id": "{CARD}", "market_price": {price}}}'
    status, body = invoke(api, "POST", "/predict", raw_body=raw)
    assert_error(status, body, 422, "invalid_request")
    assert body["details"] == [{"field": "market_price", "problem": problem}]
    _, batch = invoke(api, "POST", "/predict/batch", raw_body=f'{{"items": [{raw}]}}')
    assert batch["results"][0]["message"] == f"market_price: {problem}"


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/xml",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "application/jsonx",  # it began with application/json: it was read as JSON
    ],
)
def test_a_body_that_is_not_json_is_415(api: ModuleType, content_type: str) -> None:
    headers = {"Content-Type": content_type}
    raw = '{"card_id": "sv1-0000_holofoil"}'
    assert_error(*invoke(api, "POST", "/predict", raw_body=raw, headers=headers), 415)


def test_json_content_type_with_charset_or_none_at_all_is_accepted(api: ModuleType) -> None:
    raw = '{"card_id": "sv1-0000_holofoil"}'
    # Media types are case-insensitive (RFC 9110 section 8.3.1).
    for content_type in (
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "application/JSON; charset=UTF-8",
        "application/json ;charset=utf-8",
        None,
    ):
        headers = {"Content-Type": content_type}
        status, _ = invoke(api, "POST", "/predict", raw_body=raw, headers=headers)
        assert status == 200


@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
def test_a_request_without_a_body_is_told_so(api: ModuleType, path: str) -> None:
    status, body = invoke(api, "POST", path, raw_body="")
    assert_error(status, body, 422, "invalid_request")
    # It was "body: Field required".
    assert body["details"] == [
        {"field": "body", "problem": "the request has no body; send a JSON object"}
    ]


def test_a_binary_body_that_is_not_utf8_is_400(api: ModuleType) -> None:
    status, body = invoke(api, "POST", "/predict", raw_body="//79", base64_body=True)
    assert_error(status, body, 400, "invalid_encoding")
    identity = {"Content-Encoding": "identity"}
    status, body = invoke(
        api, "POST", "/predict", raw_body="//79", base64_body=True, headers=identity
    )
    assert_error(status, body, 400, "invalid_encoding")


@pytest.mark.parametrize("encoding", ["gzip", "BR", "x-gzip, identity"])
def test_a_body_still_compressed_is_415_naming_its_encoding(api: ModuleType, encoding: str) -> None:
    # It was 400 "not UTF-8 text". API Gateway decompresses gzip and deflate itself, so this is
    # a request that came some other way.
    compressed = base64.b64encode(gzip.compress(json.dumps({"card_id": CARD}).encode())).decode()
    headers = {"Content-Encoding": encoding}
    status, body = invoke(
        api, "POST", "/predict", raw_body=compressed, base64_body=True, headers=headers
    )
    assert_error(status, body, 415, "unsupported_media_type")
    assert body["message"] == (
        f"the request body is compressed (Content-Encoding: {encoding}); "
        "send it as uncompressed JSON"
    )
    # Decompressed (by API Gateway), with the header left in the event, it is answered.
    status, _ = invoke(api, "POST", "/predict", body={"card_id": CARD}, headers=headers)
    assert status == 200


def test_an_unknown_route_is_a_json_404(api: ModuleType) -> None:
    assert_error(*invoke(api, "GET", "/etc/passwd"), 404, "no_route")
    assert_error(*invoke(api, "DELETE", "/predict"), 404, "no_route")


def test_an_unexpected_failure_is_a_json_500(
    api: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(api.prediction, "predict", broken)
    status, body = invoke(api, "POST", "/predict", body={"card_id": CARD})
    assert_error(status, body, 500, "internal_error")
    assert "boom" not in body["message"]  # no internals leak


# --- batch ---------------------------------------------------------------------------------------
def test_batch_answers_in_order_with_an_error_object_per_failed_item(api: ModuleType) -> None:
    items = [
        {"card_id": CARD},
        {"card_id": "nope-1_holofoil"},
        {"card_id": card_id_of(1), "market_price": 1.0},
        {"card_id": CARD, "market_price": -1},
        "not an object",
        {"card_id": LATE_CARD, "date": "2000-01-01"},
        {"card_id": card_id_of(2), "extra": 1},
        {"card_id": card_id_of(2)},
    ]
    status, body = invoke(api, "POST", "/predict/batch", body={"items": items})
    assert status == 200
    results = body["results"]
    assert len(results) == len(items)
    _, single = invoke(api, "POST", "/predict", body={"card_id": CARD})
    assert results[0] == single
    assert results[2]["card_id"] == card_id_of(1) and results[2]["market_price"] == 1.0
    assert results[7]["card_id"] == card_id_of(2)
    errors = {r["index"]: r for r in results if "error" in r}
    assert {i: e["status"] for i, e in errors.items()} == {1: 404, 3: 422, 4: 422, 5: 404, 6: 422}
    assert errors[1]["card_id"] == "nope-1_holofoil"
    assert "market_price" in errors[3]["message"]
    assert "extra" in errors[6]["message"]
    # It named a class of ours: "Input should be a valid dictionary or instance of PredictRequest".
    assert errors[4]["message"] == "item: must be a JSON object with card_id"


def test_an_unknown_key_of_any_size_is_named_in_at_most_100_characters(api: ModuleType) -> None:
    key = "k" * 5000
    status, body = invoke(api, "POST", "/predict", body={"card_id": CARD, key: 1})
    assert_error(status, body, 422, "invalid_request")
    assert body["details"][0]["field"] == "k" * 100 + "…"
    # A batch item's message repeated it whole, 5,000 characters per item.
    _, batch = invoke(api, "POST", "/predict/batch", body={"items": [{"card_id": CARD, key: 1}]})
    assert batch["results"][0]["message"] == f"{'k' * 100}…: Extra inputs are not permitted"


def test_a_key_with_an_empty_name_is_named_readably(api: ModuleType) -> None:
    # `?=x` was field `query.`, read as a message cut short; `{"": 1}` was no field at all.
    status, body = invoke(api, "GET", "/cards", query={"": "x"})
    assert_error(status, body, 422, "invalid_request")
    assert [d["field"] for d in body["details"]] == ["query.(empty name)"]
    status, body = invoke(api, "POST", "/predict", body={"card_id": CARD, "": 1})
    assert_error(status, body, 422, "invalid_request")
    assert [d["field"] for d in body["details"]] == ["(empty name)"]
    _, batch = invoke(api, "POST", "/predict/batch", body={"items": [{"card_id": CARD, "": 1}]})
    assert batch["results"][0]["message"] == "(empty name): Extra inputs are not permitted"


def test_batch_of_100_is_answered_and_101_is_rejected(api: ModuleType) -> None:
    items = [{"card_id": card_id_of(i % N_CARDS)} for i in range(100)]
    status, body = invoke(api, "POST", "/predict/batch", body={"items": items})
    assert status == 200
    assert [r["card_id"] for r in body["results"]] == [i["card_id"] for i in items]
    status, body = invoke(api, "POST", "/predict/batch", body={"items": [*items, items[0]]})
    assert_error(status, body, 422, "invalid_request")
    assert body["details"][0]["field"] == "items"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ('{"items": []}', 422),
        ("{}", 422),
        ('{"items": {}}', 422),
        ('{"items": [{"card_id": "sv1-0000_holofoil"}], "more": 1}', 422),
        ('{"items": [' + ",".join(['{"card_id": "sv1-0000_holofoil"}'] * 3000) + "]}", 413),
        ("[" + "{}," * 100 + "{}]", 422),
        ('[{"items": [{"card_id": "sv1-0000_holofoil"}]}]', 422),
    ],
    ids=[
        "empty",
        "no items",
        "items not a list",
        "unknown field",
        "huge",
        "top-level list",
        "batch in a list",
    ],
)
def test_malformed_batches_are_4xx(api: ModuleType, raw: str, status: int) -> None:
    assert_error(*invoke(api, "POST", "/predict/batch", raw_body=raw), status)


# --- OpenAPI -------------------------------------------------------------------------------------
def test_openapi_document_is_valid_and_lists_every_route_with_its_errors(api: ModuleType) -> None:
    status, spec = invoke(api, "GET", "/openapi.json")
    assert status == 200
    validate(spec)
    operations = {
        (method.upper(), path): operation
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    }
    expected = {
        ("GET", "/health"): {"200", "422", "500", "503"},
        ("GET", "/cards"): {"200", "400", "422", "500", "503"},
        ("GET", "/cards/{card_id}"): {"200", "404", "422", "500", "503"},
        ("POST", "/predict"): {"200", "400", "404", "413", "415", "422", "500", "503"},
        ("POST", "/predict/batch"): {"200", "400", "413", "415", "422", "500", "503"},
    }
    assert set(operations) == set(expected)
    # Exactly those, each 422 an ErrorBody: Powertools added a 422 of its own shape to every
    # route (/health answers one only to a query parameter, which it takes none of).
    for key, statuses in expected.items():
        assert statuses == set(operations[key]["responses"]), key
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert {"PredictRequest", "Prediction", "BatchResponse", "ErrorBody", "CardPage"} <= set(
        schemas
    )
    error_ref = operations["POST", "/predict"]["responses"]["404"]["content"]["application/json"]
    assert error_ref["schema"]["$ref"].endswith("/ErrorBody")
    assert "apiKey" in spec["components"]["securitySchemes"]
    assert "security" not in operations["GET", "/health"]
    # In JSON Schema's words: `ge` and `le` are no keywords of it, and a client ignores them.
    limit = next(p for p in operations["GET", "/cards"]["parameters"] if p["name"] == "limit")
    assert {k: limit["schema"].get(k) for k in ("type", "minimum", "maximum", "ge", "le")} == {
        "type": "integer",
        "minimum": 1,
        "maximum": 500,
        "ge": None,
        "le": None,
    }


#: Requests that give every answer each route can give: (method, path, invoke's arguments).
CONTRACT_REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/health", {}),
    ("GET", "/health", {"query": {"st": "x"}}),
    ("GET", "/cards", {}),
    ("GET", "/cards", {"query": {"limit": "2", "set": "sv1", "q": "a"}}),
    ("GET", "/cards", {"query": {"limit": "0"}}),
    ("GET", "/cards", {"query": {"cursor": "zzz"}}),
    ("GET", "/cards", {"query": {"st": "sv1"}}),
    ("GET", f"/cards/{CARD}", {}),
    ("GET", "/cards/nope-1_holofoil", {}),
    ("GET", "/cards/%2E%2E", {}),
    ("GET", "/cards/\ufffd", {}),
    ("POST", "/predict", {"body": {"card_id": CARD}}),
    ("POST", "/predict", {"body": {"card_id": CARD, "date": "2025-06-01", "market_price": 2.5}}),
    ("POST", "/predict", {"body": {"card_id": "nope-1_holofoil"}}),
    ("POST", "/predict", {"body": {"card_id": CARD, "market_price": 0}}),
    ("POST", "/predict", {"raw_body": "x" * 70_000}),
    ("POST", "/predict", {"raw_body": "{}", "headers": {"Content-Type": "text/plain"}}),
    ("POST", "/predict", {"raw_body": "//79", "base64_body": True}),
    ("POST", "/predict/batch", {"body": {"items": [{"card_id": CARD}, {"card_id": "x-1"}, 3]}}),
    ("POST", "/predict/batch", {"body": {"items": []}}),
    ("POST", "/predict/batch", {"raw_body": "x" * 70_000}),
    ("POST", "/predict/batch", {"raw_body": "{}", "headers": {"Content-Type": "text/plain"}}),
    ("POST", "/predict/batch", {"raw_body": "//79", "base64_body": True}),
]


def test_every_answer_is_the_one_documented_for_its_route_and_status(
    api: ModuleType, tmp_path: Path
) -> None:
    """Each answer's status is documented for its route, and its body validates against the
    schema the document gives for that status; also with no model in service (503)."""
    _, spec = invoke(api, "GET", "/openapi.json")
    registry = Registry().with_resource(
        "urn:openapi", Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    empty = load_handler(LocalStore(tmp_path / "empty").uri)
    answers = [
        (handler, method, path, kwargs)
        for handler in (api, empty)
        for method, path, kwargs in CONTRACT_REQUESTS
    ]
    problems = []
    for handler, method, path, kwargs in answers:
        status, body = invoke(handler, method, path, **kwargs)
        route = "/cards/{card_id}" if path.startswith("/cards/") else path
        documented = spec["paths"][route][method.lower()]["responses"].get(str(status))
        if documented is None:
            problems.append(f"{method} {path} {kwargs}: {status} is not documented: {body}")
            continue
        schema = documented["content"]["application/json"]["schema"]
        reference = {"$ref": "urn:openapi#" + schema["$ref"].removeprefix("#")}
        errors = [
            e.message for e in Draft202012Validator(reference, registry=registry).iter_errors(body)
        ]
        if errors:
            problems.append(f"{method} {path} {kwargs}: {status} {body} does not match: {errors}")
    assert not problems, "\n".join(problems)


def test_swagger_ui_is_served(api: ModuleType) -> None:
    response = api.lambda_handler(api_event("GET", "/swagger"), LambdaContext())
    assert response["statusCode"] == 200
    assert "swagger-ui" in response["body"]


@pytest.mark.parametrize(
    ("stage", "path", "server"),
    [
        ("prod", "/prod/swagger", "/prod"),  # the stage URL of API Gateway
        ("prod", "/swagger", "/"),  # a custom domain
        ("prod", "/pokewatch/swagger", "/pokewatch"),  # a custom domain's base path mapping
        ("$default", "/swagger", "/"),
    ],
)
@pytest.mark.parametrize(
    ("route", "query"), [("/swagger", {"format": "json"}), ("/openapi.json", None)]
)
def test_swagger_and_the_document_call_the_api_where_they_were_served(
    api: ModuleType, stage: str, path: str, server: str, route: str, query: dict[str, str] | None
) -> None:
    # /openapi.json named the root as its server: a client generated from the document served at
    # a stage URL (`https://.../prod/openapi.json`) called `https://.../cards`, not the API.
    event = api_event("GET", route, query=query)
    event["requestContext"].update(stage=stage, path=path.replace("/swagger", route))
    response = api.lambda_handler(event, LambdaContext())
    assert json.loads(response["body"])["servers"] == [{"url": server}]


# --- model loading -------------------------------------------------------------------------------
def test_a_newly_promoted_model_is_served_within_the_ttl(
    api: ModuleType, store: LocalStore
) -> None:
    clock = v1_served_then_v2_promoted(api, store)
    clock.now = 59
    assert invoke(api, "GET", "/health")[1]["model_version"] == "v1"  # warm, not re-read
    clock.now = 60
    status, health = health_when(api, lambda h: h["model_version"] == "v2")
    assert (status, health["model_version"], health["cards"]) == (200, "v2", 5)
    _, answer = invoke(api, "POST", "/predict", body={"card_id": CARD})
    assert answer["model_version"] == "v2"


def test_a_broken_new_model_leaves_the_previous_one_serving(
    api: ModuleType, store: LocalStore
) -> None:
    clock = use_clock(api, store, ttl=60)
    assert invoke(api, "GET", "/health")[0] == 200
    put_model(store, "v2")
    registry.promote(store, "v2")
    # Damaged after promotion (the registry refuses to promote a file the API cannot read).
    store.put_bytes(keys.model_artifact("v2", keys.SERVING_FILE), b"PKWSERVING2\ngarbage")
    clock.now = 61
    status, health = health_when(api, lambda h: h["status"] == "degraded")
    assert (status, health["status"], health["model_version"]) == (200, "degraded", "v1")
    assert "invalid" in health["detail"]
    status, answer = invoke(api, "POST", "/predict", body={"card_id": CARD})
    assert (status, answer["model_version"]) == (200, "v1")
    put_model(store, "v2")  # repaired in place
    clock.now = 122
    status, health = health_when(api, lambda h: h["model_version"] == "v2")
    assert (health["status"], health["model_version"]) == ("ok", "v2")


def test_a_damaged_pointer_is_one_line_in_health_while_the_model_in_hand_serves(
    api: ModuleType, store: LocalStore
) -> None:
    clock = use_clock(api, store, ttl=60)
    assert invoke(api, "GET", "/health")[0] == 200
    store.put_bytes(keys.CURRENT_MODEL, b'{"version": 5}')
    clock.now = 61
    status, health = health_when(api, lambda h: h["status"] == "degraded")
    assert (status, health["model_version"]) == (200, "v1")
    # It was pydantic's message: several lines and a documentation URL.
    assert health["detail"] == (
        "models/current.json is not a promotion record: version: Input should be a valid "
        "string; promoted_at: Field required"
    )


def test_a_missing_artifact_at_cold_start_is_503_until_a_model_appears(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    quiet_environment(monkeypatch)
    store = LocalStore(tmp_path / "store")
    promote_model(store, "v1")
    store.delete(keys.model_artifact("v1", keys.SERVING_FILE))
    api = load_handler(store.uri)
    clock = use_clock(api, store, ttl=600)
    status, body = invoke(api, "POST", "/predict", body={"card_id": CARD})
    assert_error(status, body, 503, "model_unavailable")
    assert "models/v1/serving.bin" in body["message"]
    put_model(store, "v1")
    clock.now = 5  # a first model is looked for again soon, not after the whole TTL
    assert invoke(api, "POST", "/predict", body={"card_id": CARD})[0] == 200


def test_the_ttl_comes_from_settings(store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    quiet_environment(monkeypatch)
    api = load_handler(store.uri, POKEWATCH_MODEL_TTL_SECONDS="0")
    assert invoke(api, "GET", "/health")[1]["model_version"] == "v1"
    promote_model(store, "v2")
    # Without waiting out the default minute.
    assert health_when(api, lambda h: h["model_version"] == "v2")[1]["model_version"] == "v2"


def test_a_slow_store_after_the_ttl_does_not_hold_up_requests(
    api: ModuleType, store: LocalStore
) -> None:
    clock = v1_served_then_v2_promoted(api, store)
    release = threading.Event()
    original_get = LocalStore.get_bytes

    def slow_get(self: LocalStore, key: str) -> bytes:
        release.wait(timeout=10)
        return original_get(self, key)

    clock.now = 60
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LocalStore, "get_bytes", slow_get)
        started = time.monotonic()
        for _ in range(3):  # one starts the refresh, none waits for it
            status, answer = invoke(api, "POST", "/predict", body={"card_id": CARD})
            assert (status, answer["model_version"]) == (200, "v1")
        assert time.monotonic() - started < 2
        release.set()
        status, health = health_when(api, lambda h: h["model_version"] == "v2")
    assert (status, health["cards"]) == (200, 5)


def test_the_cold_start_preload_is_waited_for_not_repeated(store: LocalStore) -> None:
    release = threading.Event()
    reads: list[tuple[str, str]] = []

    class SlowStore:
        """The store, answering only once released: the first request comes during the preload."""

        def get_bytes(self, key: str) -> bytes:
            release.wait(timeout=10)
            reads.append((threading.current_thread().name, key))
            return store.get_bytes(key)

    opened_in: list[str] = []

    def open_slow_store() -> SlowStore:
        opened_in.append(threading.current_thread().name)
        return SlowStore()

    loader = ModelLoader(open_slow_store, ttl_seconds=60)  # type: ignore[arg-type]
    loader.preload()
    assert opened_in == ["MainThread"]  # the S3 client is made before the background thread
    threading.Timer(0.05, release.set).start()
    assert loader.state().table.facts.model_version == "v1"
    assert reads == [
        ("model-preload", keys.CURRENT_MODEL),
        ("model-preload", keys.model_artifact("v1", keys.SERVING_FILE)),
    ]
    assert opened_in == ["MainThread"]


def test_a_store_that_cannot_be_opened_at_preload_is_reported_and_retried(
    store: LocalStore,
) -> None:
    attempts: list[str] = []

    def flaky_open() -> LocalStore:
        attempts.append(threading.current_thread().name)
        if len(attempts) < 3:
            raise OSError("no route to the store")
        return store

    now = [0.0]
    loader = ModelLoader(flaky_open, ttl_seconds=60, clock=lambda: now[0], retry_seconds=5)
    loader.preload().join(timeout=10)
    assert attempts == ["MainThread", "model-preload"]
    with pytest.raises(ModelUnavailable, match="model store error: OSError: no route to the store"):
        loader.state()
    now[0] += 5
    assert loader.state().table.facts.model_version == "v1"
    assert attempts == ["MainThread", "model-preload", "MainThread"]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # on purpose
def test_preload_runs_its_follow_up_after_the_load_also_when_it_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded: list[bool] = []
    good = ModelLoader(lambda: promoted_store(tmp_path / "good"), ttl_seconds=60)
    good.preload(then=lambda: loaded.append(good._state is not None)).join(timeout=10)
    empty = ModelLoader(lambda: LocalStore(tmp_path / "empty"), ttl_seconds=60)
    empty.preload(then=lambda: loaded.append(empty._state is not None)).join(timeout=10)
    assert loaded == [True, False]
    with pytest.raises(ModelUnavailable, match="artifact not found"):
        empty.state()

    def broken(self: ModelLoader) -> None:
        raise RuntimeError("the load itself failed")

    monkeypatch.setattr(ModelLoader, "_refresh_if_due", broken)
    ran = threading.Event()
    ModelLoader(lambda: LocalStore(tmp_path), ttl_seconds=60).preload(then=ran.set).join(10)
    assert ran.is_set()


def test_a_lambda_cold_start_pauses_garbage_collection_until_the_model_is_loaded(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    quiet_environment(monkeypatch)
    assert gc.isenabled() and gc.get_freeze_count() == 0
    load_handler(store.uri)  # not in Lambda: collection is left alone
    assert gc.isenabled() and gc.get_freeze_count() == 0

    monkeypatch.setenv("AWS_EXECUTION_ENV", "AWS_Lambda_python3.13")
    paused: list[bool] = []
    release = threading.Event()
    original_refresh = ModelLoader._refresh_if_due

    def slow_refresh(self: ModelLoader) -> None:
        if threading.current_thread().name == "model-preload":
            paused.append(not gc.isenabled())  # before it loads
            release.wait(timeout=10)
        original_refresh(self)

    monkeypatch.setattr(ModelLoader, "_refresh_if_due", slow_refresh)
    try:
        api = load_handler(store.uri)
        assert not gc.isenabled()  # imported, model still loading
        release.set()
        assert invoke(api, "GET", "/health")[1]["model_version"] == "v1"
        _join_preloads()
        assert paused == [True]
        assert gc.isenabled() and gc.get_freeze_count() > 0
    finally:
        release.set()
        _join_preloads()  # its follow-up must not freeze after the clean-up
        gc.unfreeze()
        gc.enable()


def test_collection_resumes_only_once_the_handler_module_is_initialised(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model is read during the module's imports: a fast read must not resume collection
    while the rest of the module still creates its long-lived objects."""
    quiet_environment(monkeypatch)
    monkeypatch.setenv("AWS_EXECUTION_ENV", "AWS_Lambda_python3.13")
    loaded = threading.Event()
    original_refresh = ModelLoader._refresh_if_due
    original_make_tracer = observability.make_tracer
    enabled_mid_import: list[bool] = []

    def refresh_and_signal(self: ModelLoader) -> None:
        original_refresh(self)
        if threading.current_thread().name == "model-preload":
            loaded.set()

    def probing_make_tracer(service: str) -> Any:
        # Called by the module after its imports, before its routes.
        assert loaded.wait(timeout=10)
        time.sleep(0.05)  # time for the preload thread to go on after the load
        enabled_mid_import.append(gc.isenabled())
        return original_make_tracer(service)

    monkeypatch.setattr(ModelLoader, "_refresh_if_due", refresh_and_signal)
    monkeypatch.setattr(observability, "make_tracer", probing_make_tracer)
    try:
        load_handler(store.uri)
        _join_preloads()
        assert enabled_mid_import == [False]
        assert gc.isenabled() and gc.get_freeze_count() > 0
    finally:
        _join_preloads()
        gc.unfreeze()
        gc.enable()


def _join_preloads() -> None:
    for thread in threading.enumerate():
        if thread.name == "model-preload":
            thread.join(timeout=10)


# --- observability and packaging -----------------------------------------------------------------
def test_metrics_count_latency_errors_and_cards_predicted(
    api: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    items = [{"card_id": CARD}, {"card_id": "nope-1_holofoil"}, {"card_id": card_id_of(1)}]
    invoke(api, "POST", "/predict/batch", body={"items": items})
    invoke(api, "POST", "/predict", body={"card_id": "nope-1_holofoil"})
    emitted = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line
    ]
    batch, failed = (m for m in emitted if "Latency" in m)
    assert batch["CardsPredicted"] == [2.0]
    assert (batch["Http4xx"], batch["Http5xx"]) == ([0.0], [0.0])
    assert (failed["Http4xx"], failed["Http5xx"]) == ([1.0], [0.0])
    assert "CardsPredicted" not in failed
    assert failed["Latency"][0] > 0
    assert {m["Name"] for m in batch["_aws"]["CloudWatchMetrics"][0]["Metrics"]} >= {
        "Latency",
        "Http4xx",
        "Http5xx",
        "CardsPredicted",
    }


def test_logs_are_json_with_the_request_id_as_correlation_id(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    quiet_environment(monkeypatch)
    api = load_handler(store.uri)
    api.loader.state()  # the cold start's model, loaded in the background before any request
    use_clock(api, store, ttl=60)  # this loader loads the model in the request: logged with its id
    # Powertools sets up a service's logger once per process, on the stdout of that moment.
    output = io.StringIO()
    monkeypatch.setattr(api.logger.registered_handler, "stream", output)
    event = api_event("POST", "/predict", body={"card_id": "nope-1_holofoil"})
    loggers = [logging.getLogger("pokewatch-api"), logging.getLogger("pokewatch")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.INFO)
        api.lambda_handler(event, LambdaContext())
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
    lines = [json.loads(line) for line in output.getvalue().splitlines()]
    failed = next(line for line in lines if line["message"] == "request failed")
    assert failed["correlation_id"] == event["requestContext"]["requestId"]
    assert (failed["status"], failed["error"]) == (404, "not_found")
    loaded = next(line for line in lines if "loaded" in line["message"])
    assert loaded["correlation_id"] == event["requestContext"]["requestId"]


def test_the_cold_start_load_logs_through_the_powertools_logger(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The preload starts before most of the module: its log lines must already go out as JSON."""
    quiet_environment(monkeypatch)
    monkeypatch.setattr(logging.getLogger("pokewatch"), "handlers", [])  # as in a new process
    handlers_at_load: list[list[logging.Handler]] = []
    original_refresh = ModelLoader._refresh_if_due

    def recording_refresh(self: ModelLoader) -> None:
        if threading.current_thread().name == "model-preload":
            handlers_at_load.append(list(logging.getLogger("pokewatch").handlers))
        original_refresh(self)

    monkeypatch.setattr(ModelLoader, "_refresh_if_due", recording_refresh)
    api = load_handler(store.uri)
    _join_preloads()
    assert handlers_at_load == [[api.logger.registered_handler]]


def test_concurrent_invocations_each_get_their_own_answer(api: ModuleType) -> None:
    problems: list[str] = []

    def client(i: int) -> None:
        card_id = card_id_of(i % N_CARDS)
        for _ in range(30):
            status, body = invoke(api, "POST", "/predict", body={"card_id": card_id})
            if status != 200 or body["card_id"] != card_id:
                problems.append(f"{card_id}: {status} {body}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert problems == []


def test_the_handler_imports_nothing_its_cold_start_does_not_need(store: LocalStore) -> None:
    # No ML stack; no X-Ray SDK with tracing off; no OpenAPI models before the document is asked;
    # no pydantic-settings (the settings read the environment themselves).
    code = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('app', {str(HANDLER_PATH)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "heavy = {'pandas', 'numpy', 'sklearn', 'pyarrow', 'scipy', 'aws_xray_sdk.core',\n"
        "         'aws_lambda_powertools.event_handler.openapi.models', 'pydantic_settings'}\n"
        "print(json.dumps(sorted(heavy & set(sys.modules))))\n"
    )
    env = {
        "POKEWATCH_STORE": store.uri,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",  # no log line of the model preload in the answer
        "PATH": "",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout) == []


def test_a_validators_message_is_given_in_its_own_words(api: ModuleType) -> None:
    status, body = invoke(api, "POST", "/predict", body={"card_id": CARD, "date": 1704067200})
    assert_error(status, body, 422, "invalid_request")
    assert body["details"] == [
        {"field": "date", "problem": "date must be a day written YYYY-MM-DD"}
    ]


def test_a_store_error_while_refreshing_is_asked_again_soon_not_after_a_whole_ttl(
    api: ModuleType, store: LocalStore
) -> None:
    clock = v1_served_then_v2_promoted(api, store)

    def unreachable(self: LocalStore, key: str) -> bytes:
        raise OSError("connection reset")

    clock.now = 60
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LocalStore, "get_bytes", unreachable)
        status, health = health_when(api, lambda h: h["status"] == "degraded")
    assert (status, health["model_version"]) == (200, "v1")
    assert "model store error: OSError: connection reset" in health["detail"]
    clock.now = 65  # the loader's retry_seconds later, far from the next TTL at 120
    status, health = health_when(api, lambda h: h["model_version"] == "v2")
    assert (status, health["status"], health["cards"]) == (200, "ok", 5)


def test_a_refresh_thread_that_cannot_start_does_not_stop_later_refreshes(
    api: ModuleType, store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = v1_served_then_v2_promoted(api, store)
    clock.now = 60

    def no_threads(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(threading.Thread, "start", no_threads)
        # The table in hand answers: it was a 500 for a request that needed no refresh.
        status, answer = invoke(api, "POST", "/predict", body={"card_id": CARD})
        assert (status, answer["model_version"]) == (200, "v1")
    assert health_when(api, lambda h: h["model_version"] == "v2")[1]["model_version"] == "v2"
