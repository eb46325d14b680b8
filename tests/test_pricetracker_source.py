"""The `pricetracker` source over recorded Pokémon Price Tracker API v2 responses."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import responses
from responses import matchers

from pokewatch.observations import HISTORY_COLUMNS
from pokewatch.settings import Settings
from pokewatch.sources import base
from pokewatch.sources.base import SourceError, TransientSourceError
from pokewatch.sources.http import HttpClient
from pokewatch.sources.pricetracker import PriceTrackerSource

FIXTURES = Path(__file__).parent / "fixtures" / "pricetracker"
BASE = "https://www.pokemonpricetracker.com/api/v2"
KEY = "pt-live-9a8b7c6d5e4f"
TODAY = dt.date(2024, 6, 3)


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def without_history(page: dict[str, Any]) -> dict[str, Any]:
    """What the API answers when history is not asked for."""
    return {**page, "data": [{**c, "priceHistory": None} for c in page["data"]]}


def daily_page() -> dict[str, Any]:
    """The whole answer of a daily collection (no history): the first page's card alone."""
    page = without_history(fixture("cards_sv3pt5_page1.json"))
    page["metadata"]["hasMore"] = False
    return page


def offset(value: int) -> matchers.query_param_matcher:
    return matchers.query_param_matcher({"offset": str(value)}, strict_match=False)


@pytest.fixture
def source() -> PriceTrackerSource:
    client = HttpClient(
        BASE,
        headers=lambda: {"Authorization": f"Bearer {KEY}"},
        secrets=lambda: [KEY],
        max_attempts=3,
        sleep=lambda _: None,
    )
    return PriceTrackerSource(client, today=lambda: TODAY)


@responses.activate
def test_a_backfill_pages_with_offsets_and_keeps_the_near_mint_history(
    source: PriceTrackerSource,
) -> None:
    query = {"setId": "sv3pt5", "includeHistory": "true", "days": "3", "limit": "100"}
    bearer = matchers.header_matcher({"Authorization": f"Bearer {KEY}"})
    responses.get(
        f"{BASE}/cards",
        json=fixture("cards_sv3pt5_page1.json"),
        match=[matchers.query_param_matcher({**query, "offset": "0"}), bearer],
    )
    responses.get(
        f"{BASE}/cards",
        json=fixture("cards_sv3pt5_page2.json"),
        match=[matchers.query_param_matcher({**query, "offset": "1"}), bearer],
    )

    rows = source.collect("sv3pt5", dt.date(2024, 6, 1), TODAY)

    assert list(rows.columns) == list(HISTORY_COLUMNS)
    charizard = rows[rows["card_id"] == "sv3pt5-6_holofoil"]
    # Near Mint only; the latest price is the history's last day, not a second row.
    assert charizard["date"].dt.day.tolist() == [1, 2, 3]
    assert charizard["market_price"].tolist() == [4.0, 4.05, 4.1]
    assert charizard["volume"].tolist() == [12, 0, 9]
    assert set(charizard["set_id"]) == {"sv3pt5"}
    assert set(charizard["rarity"]) == {"Double Rare"}
    # A null history day and a 0 latest price carry no price.
    mew = rows[rows["card_id"] == "sv3pt5-205_reverse_holofoil"]
    assert mew["date"].tolist() == [pd.Timestamp("2024-06-01")]
    assert mew["market_price"].tolist() == [81.2]
    assert set(rows["card_id"]) == {"sv3pt5-6_holofoil", "sv3pt5-205_reverse_holofoil"}


@responses.activate
def test_a_card_of_an_unexpected_shape_is_skipped_and_named_not_its_set(
    source: PriceTrackerSource, caplog: pytest.LogCaptureFixture
) -> None:
    # One history point without a date failed the whole page, so the whole set.
    page1 = fixture("cards_sv3pt5_page1.json")
    page1["data"][0]["priceHistory"]["conditions"]["Near Mint"]["history"][0]["date"] = None
    responses.get(f"{BASE}/cards", json=page1, match=[offset(0)])
    responses.get(f"{BASE}/cards", json=fixture("cards_sv3pt5_page2.json"), match=[offset(1)])

    rows = source.collect("sv3pt5", dt.date(2024, 6, 1), TODAY)

    assert rows["card_id"].tolist() == ["sv3pt5-205_reverse_holofoil"]
    assert "skipped '65a1f0c2e4b0a1b2c3d4e5f6' (priceHistory.conditions" in caplog.text


@responses.activate
def test_a_card_on_two_pages_is_kept_once_as_first_seen(
    source: PriceTrackerSource, caplog: pytest.LogCaptureFixture
) -> None:
    # Offset pages overlap when the list shifts between two requests (a card added before the
    # offset): Charizard ends page 1 and starts page 2, at newer prices. Its whole history was
    # then two rows of one print on each day.
    first, second = fixture("cards_sv3pt5_page1.json"), fixture("cards_sv3pt5_page2.json")
    again = json.loads(json.dumps(first["data"][0]))
    for point in again["priceHistory"]["conditions"]["Near Mint"]["history"]:
        point["market"] = 9.99
    second["data"] = [again, *second["data"]]
    responses.get(f"{BASE}/cards", json=first, match=[offset(0)])
    responses.get(f"{BASE}/cards", json=second, match=[offset(1)])

    rows = source.collect("sv3pt5", dt.date(2024, 6, 1), TODAY)

    charizard = rows[rows["card_id"] == "sv3pt5-6_holofoil"]
    assert charizard["date"].dt.day.tolist() == [1, 2, 3]
    assert charizard["market_price"].tolist() == [4.0, 4.05, 4.1]
    assert "seen again on a later page, each kept once: 1 (first: '65a1f0c2e4b0a1b2c3d4e5f6')" in (
        caplog.text
    )


@responses.activate
def test_a_set_on_two_pages_is_listed_once(source: PriceTrackerSource) -> None:
    # The sets are paged as the cards are: a set on two pages was listed twice (the plan step
    # drops the repeat, but `list_sets` promises each set once).
    sets = fixture("sets.json")
    sets["data"].append(sets["data"][0])
    responses.get(f"{BASE}/sets", json=sets)

    assert source.list_sets(dt.date(2024, 12, 1)) == ["sv3pt5", "sv8"]


@responses.activate
def test_a_volume_that_is_no_count_is_read_as_missing(source: PriceTrackerSource) -> None:
    # round(NaN) (JSON's NaN, which Python reads) and 1e30 (a pandas overflow) failed the set.
    page1 = fixture("cards_sv3pt5_page1.json")
    history = page1["data"][0]["priceHistory"]["conditions"]["Near Mint"]["history"]
    history[0]["volume"], history[1]["volume"] = float("nan"), 1e30
    responses.get(f"{BASE}/cards", json=page1, match=[offset(0)])
    responses.get(f"{BASE}/cards", json=fixture("cards_sv3pt5_page2.json"), match=[offset(1)])

    rows = source.collect("sv3pt5", dt.date(2024, 6, 1), TODAY)

    charizard = rows[rows["card_id"] == "sv3pt5-6_holofoil"]
    assert charizard["market_price"].tolist() == [4.0, 4.05, 4.1]
    assert charizard["volume"].isna().tolist() == [True, True, False]


@responses.activate
def test_the_range_trims_the_history(source: PriceTrackerSource) -> None:
    responses.get(f"{BASE}/cards", json=fixture("cards_sv3pt5_page1.json"))
    responses.get(f"{BASE}/cards", json=fixture("cards_sv3pt5_page2.json"))

    rows = source.collect("sv3pt5", dt.date(2024, 6, 2), dt.date(2024, 6, 2))

    assert rows["card_id"].tolist() == ["sv3pt5-6_holofoil"]
    assert rows["market_price"].tolist() == [4.05]


@responses.activate
def test_the_daily_collection_asks_for_no_history_and_keeps_the_latest_price(
    source: PriceTrackerSource,
) -> None:
    responses.get(
        f"{BASE}/cards",
        json=daily_page(),
        match=[matchers.query_param_matcher({"setId": "sv3pt5", "limit": "200", "offset": "0"})],
    )

    rows = source.collect("sv3pt5", TODAY, TODAY)

    assert rows["card_id"].tolist() == ["sv3pt5-6_holofoil"]
    assert rows["date"].tolist() == [pd.Timestamp(TODAY)]
    assert (rows.loc[0, "market_price"], rows.loc[0, "low_price"]) == (4.1, 3.5)


@responses.activate
def test_the_daily_collection_keeps_a_latest_price_updated_before_the_day(
    source: PriceTrackerSource,
) -> None:
    # The run of TODAY (start = end = TODAY) may find prices last updated the day before (the
    # recorded ones are updated at 12:00Z, the schedule runs at 06:00 UTC). They were dropped:
    # every set came back empty and the run failed with "no prices collected".
    page = daily_page()
    page["data"][0]["prices"]["lastUpdated"] = "2024-06-02T12:00:00Z"
    responses.get(f"{BASE}/cards", json=page)

    rows = source.collect("sv3pt5", TODAY, TODAY)

    assert rows["card_id"].tolist() == ["sv3pt5-6_holofoil"]
    assert rows["date"].tolist() == [pd.Timestamp("2024-06-02")]


@responses.activate
def test_history_reaches_back_at_most_365_days(source: PriceTrackerSource) -> None:
    responses.get(
        f"{BASE}/cards",
        json={"data": [], "metadata": {"total": 0, "hasMore": False}},
        match=[matchers.query_param_matcher({"days": "365"}, strict_match=False)],
    )

    rows = source.collect("sv3pt5", dt.date(2020, 1, 1), TODAY)

    assert rows.empty and list(rows.columns) == list(HISTORY_COLUMNS)
    assert len(responses.calls) == 1


@responses.activate
def test_list_sets_keeps_the_sets_released_by_the_day(source: PriceTrackerSource) -> None:
    responses.get(f"{BASE}/sets", json=fixture("sets.json"))

    assert source.list_sets(dt.date(2024, 6, 1)) == ["sv3pt5"]
    assert source.list_sets(dt.date(2024, 12, 1)) == ["sv3pt5", "sv8"]


@responses.activate
def test_a_bad_key_is_a_source_error_that_does_not_show_it(
    source: PriceTrackerSource, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pokewatch")
    responses.get(
        f"{BASE}/cards",
        status=401,
        json={"error": "Unauthorized", "message": f"Invalid API key {KEY}"},
    )

    with pytest.raises(SourceError) as caught:
        source.collect("sv3pt5", TODAY, TODAY)

    assert "HTTP 401" in str(caught.value) and f"{BASE}/cards" in str(caught.value)
    assert KEY not in str(caught.value) and KEY not in caplog.text


@responses.activate
def test_rate_limits_are_retried_then_handed_over(source: PriceTrackerSource) -> None:
    responses.get(f"{BASE}/cards", status=429, headers={"Retry-After": "1"})

    # The set is in the query, which the client's message leaves out: the source names it.
    with pytest.raises(TransientSourceError, match=r"^pricetracker set sv3pt5: GET .*HTTP 429"):
        source.collect("sv3pt5", TODAY, TODAY)
    assert len(responses.calls) == 3


@responses.activate
def test_a_response_of_the_wrong_shape_is_a_source_error(source: PriceTrackerSource) -> None:
    responses.get(f"{BASE}/cards", json={"data": [{"priceHistory": {"conditions": []}}]})

    with pytest.raises(SourceError, match="unexpected response shape"):
        source.collect("sv3pt5", TODAY, TODAY)


def test_the_source_needs_a_key_parameter() -> None:
    with pytest.raises(SourceError, match="POKEWATCH_PRICETRACKER_API_KEY_PARAMETER"):
        PriceTrackerSource.from_settings(Settings(pricetracker_api_key_parameter=None))


@responses.activate
def test_a_server_whose_pages_never_end_is_a_source_error(
    source: PriceTrackerSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base, "MAX_LIST_ITEMS", 5)
    endless = without_history(fixture("cards_sv3pt5_page1.json"))
    endless["metadata"]["hasMore"] = True
    responses.get(f"{BASE}/cards", json=endless)

    with pytest.raises(SourceError, match="more than 5 items"):
        source.collect("sv3pt5", TODAY, TODAY)
