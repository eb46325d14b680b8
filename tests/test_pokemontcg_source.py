"""The `pokemontcg` source over recorded pokemontcg.io v2 responses, and its key from SSM."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
import responses
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws
from responses import matchers

from pokewatch.observations import HISTORY_COLUMNS
from pokewatch.settings import Settings
from pokewatch.sources import base
from pokewatch.sources.base import SourceError
from pokewatch.sources.http import HttpClient
from pokewatch.sources.pokemontcg import PokemonTcgSource
from pokewatch.sources.secrets import ApiKey, read_api_key

FIXTURES = Path(__file__).parent / "fixtures" / "pokemontcg"
BASE = "https://api.pokemontcg.io/v2"
KEY = "ptcg-key-5f1e2d3c4b5a"
PARAMETER = "/pokewatch/test/pokemontcg-api-key"


#: The prints of the two recorded pages of set sv1 that have a market price, in order.
SV1_PRINTS = [
    "sv1-1_normal",
    "sv1-1_reverse_holofoil",
    "sv1-81_holofoil",
    "sv1-198_1st_edition_holofoil",
]


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def cards_query(set_id: str, page: int) -> matchers.query_param_matcher:
    return matchers.query_param_matcher(
        {
            "q": f"set.id:{set_id}",
            "select": "id,name,number,rarity,set,tcgplayer",
            "page": str(page),
            "pageSize": "250",
        }
    )


@pytest.fixture
def source() -> PokemonTcgSource:
    client = HttpClient(BASE, sleep=lambda _: None, max_attempts=2)
    return PokemonTcgSource(client)


@responses.activate
def test_collect_walks_every_page_and_keeps_one_row_per_priced_variant(
    source: PokemonTcgSource,
) -> None:
    responses.get(
        f"{BASE}/cards", json=fixture("cards_sv1_page1.json"), match=[cards_query("sv1", 1)]
    )
    responses.get(
        f"{BASE}/cards", json=fixture("cards_sv1_page2.json"), match=[cards_query("sv1", 2)]
    )

    rows = source.collect("sv1", dt.date(2024, 6, 1), dt.date(2024, 6, 1))

    assert list(rows.columns) == list(HISTORY_COLUMNS)
    # A null market price (sv1-198 holofoil) and a card without tcgplayer (sv1-258) are skipped.
    assert rows["card_id"].tolist() == SV1_PRINTS
    miraidon = rows.set_index("card_id").loc["sv1-81_holofoil"]
    assert miraidon["market_price"] == 2.31
    assert (miraidon["low_price"], miraidon["high_price"]) == (1.5, 20.0)
    assert miraidon["variant"] == "holofoil"
    assert (miraidon["set_id"], miraidon["set_name"]) == ("sv1", "Scarlet & Violet")
    assert miraidon["rarity"] == "Double Rare"
    assert miraidon["release_date"] == pd.Timestamp("2023-03-31")
    assert set(rows["date"]) == {pd.Timestamp("2024-06-01")}
    assert len(responses.calls) == 2


@responses.activate
def test_a_day_out_of_range_skips_its_card_or_is_a_missing_release_date(
    source: PokemonTcgSource,
) -> None:
    # A sentinel day (0001/01/01) failed the whole set with pandas' OutOfBoundsDatetime.
    page = fixture("cards_sv1_page1.json")
    page["data"][0]["tcgplayer"]["updatedAt"] = "0001/01/01"
    page["data"][1]["set"] = {**page["data"][1]["set"], "releaseDate": "0023/03/31"}
    responses.get(f"{BASE}/cards", json=page, match=[cards_query("sv1", 1)])
    responses.get(
        f"{BASE}/cards", json=fixture("cards_sv1_page2.json"), match=[cards_query("sv1", 2)]
    )

    rows = source.collect("sv1", dt.date(2024, 6, 1), dt.date(2024, 6, 1))

    assert rows["card_id"].tolist() == ["sv1-81_holofoil", "sv1-198_1st_edition_holofoil"]
    assert pd.isna(rows.set_index("card_id").loc["sv1-81_holofoil", "release_date"])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (("tcgplayer", "updatedAt"), None),
        (("rarity",), None),
        (("name",), None),
        (("tcgplayer", "prices", "normal", "market"), "N/A"),
        (("set", "releaseDate"), "soon"),
    ],
)
@responses.activate
def test_a_card_of_an_unexpected_shape_is_skipped_and_named_not_its_set(
    source: PokemonTcgSource,
    caplog: pytest.LogCaptureFixture,
    field: tuple[str, ...],
    value: object,
) -> None:
    # One odd card (a null rarity, a price "N/A") failed the whole page, so the whole set.
    page = fixture("cards_sv1_page1.json")
    parent = page["data"][0]
    for name in field[:-1]:
        parent = parent[name]
    parent[field[-1]] = value
    responses.get(f"{BASE}/cards", json=page, match=[cards_query("sv1", 1)])
    responses.get(
        f"{BASE}/cards", json=fixture("cards_sv1_page2.json"), match=[cards_query("sv1", 2)]
    )

    rows = source.collect("sv1", dt.date(2024, 6, 1), dt.date(2024, 6, 1))

    assert rows["card_id"].tolist() == ["sv1-81_holofoil", "sv1-198_1st_edition_holofoil"]
    assert f"skipped 'sv1-1' ({'.'.join(field)}:" in caplog.text


@responses.activate
def test_a_page_of_cards_none_of_which_is_valid_is_a_source_error(
    source: PokemonTcgSource,
) -> None:
    page = {"data": [{"name": "no id, no set"}], "page": 1, "pageSize": 250, "totalCount": 1}
    responses.get(f"{BASE}/cards", json=page)

    with pytest.raises(SourceError, match=r"unexpected response shape .*item 0 \(id: Field"):
        source.collect("sv1", dt.date(2024, 6, 1), dt.date(2024, 6, 1))


@responses.activate
def test_pages_without_a_total_count_are_walked_until_a_short_one(
    source: PokemonTcgSource,
) -> None:
    for page in (1, 2):
        body = fixture(f"cards_sv1_page{page}.json")
        del body["totalCount"]
        responses.get(f"{BASE}/cards", json=body, match=[cards_query("sv1", page)])
    last = {"data": [], "page": 3, "pageSize": 2, "count": 0}
    responses.get(f"{BASE}/cards", json=last, match=[cards_query("sv1", 3)])

    rows = source.collect("sv1", dt.date(2024, 6, 1), dt.date(2024, 6, 1))

    assert len(rows) == 4
    assert len(responses.calls) == 3


@responses.activate
def test_a_card_on_two_pages_is_kept_once_as_first_seen(
    source: PokemonTcgSource, caplog: pytest.LogCaptureFixture
) -> None:
    # Pages overlap when the list shifts between two requests: sv1-81 ends page 1 and starts
    # page 2, at a newer price. It was two rows of one print on one day.
    first, second = fixture("cards_sv1_page1.json"), fixture("cards_sv1_page2.json")
    again = json.loads(json.dumps(first["data"][1]))
    again["tcgplayer"]["prices"]["holofoil"]["market"] = 2.5
    second["data"] = [again, second["data"][0]]
    responses.get(f"{BASE}/cards", json=first, match=[cards_query("sv1", 1)])
    responses.get(f"{BASE}/cards", json=second, match=[cards_query("sv1", 2)])

    rows = source.collect("sv1", dt.date(2024, 6, 1), dt.date(2024, 6, 1))

    assert rows["card_id"].tolist() == SV1_PRINTS
    assert rows.set_index("card_id").loc["sv1-81_holofoil", "market_price"] == 2.31
    assert "seen again on a later page, each kept once: 1 (first: 'sv1-81')" in caplog.text


def serve_sv1_with_prices(prices: dict[str, Any]) -> None:
    """The two recorded pages of set sv1, with `prices` added to its first card's."""
    page = fixture("cards_sv1_page1.json")
    page["data"][0]["tcgplayer"]["prices"].update(prices)
    responses.get(f"{BASE}/cards", json=page, match=[cards_query("sv1", 1)])
    responses.get(
        f"{BASE}/cards", json=fixture("cards_sv1_page2.json"), match=[cards_query("sv1", 2)]
    )


@responses.activate
def test_an_unknown_price_key_is_a_print_of_its_own_with_a_warning(
    source: PokemonTcgSource, caplog: pytest.LogCaptureFixture
) -> None:
    # A key pokemontcg.io adds for a new kind of print: its prices are that print's, neither
    # dropped nor filed under another print; the warning says TCGPLAYER_PRICE_KEYS lacks it.
    serve_sv1_with_prices({"pokeballReverseHolofoil": {"market": 3.75}})

    rows = source.collect("sv1", dt.date(2024, 6, 1), dt.date(2024, 6, 1)).set_index("card_id")

    print_ = rows.loc["sv1-1_pokeball_reverse_holofoil"]
    assert (print_["variant"], print_["market_price"]) == ("pokeball_reverse_holofoil", 3.75)
    assert rows.loc["sv1-1_reverse_holofoil", "market_price"] != 3.75
    assert (
        "pokemontcg set sv1: price keys not in TCGPLAYER_PRICE_KEYS, each kept as a print of "
        "its own: pokeball_reverse_holofoil"
    ) in caplog.text


@responses.activate
def test_a_price_key_without_a_letter_or_digit_is_skipped_and_named(
    source: PokemonTcgSource, caplog: pytest.LogCaptureFixture
) -> None:
    # Its variant name is empty: it made the print id `sv1-1_`, a print with no variant.
    serve_sv1_with_prices({"—": {"market": 3.75}, " - ": {"market": 4.5}})

    with caplog.at_level(logging.WARNING, logger="pokewatch.sources.pokemontcg"):
        rows = source.collect("sv1", dt.date(2024, 6, 1), dt.date(2024, 6, 1))

    assert rows["card_id"].tolist() == SV1_PRINTS
    assert (
        "pokemontcg set sv1: price keys without a letter or digit, skipped (no print id can be "
        "made of them): ' - ', '—'"
    ) in caplog.text
    assert "not in TCGPLAYER_PRICE_KEYS" not in caplog.text


@responses.activate
def test_it_cannot_backfill_a_range_that_ends_before_the_snapshot(
    source: PokemonTcgSource,
) -> None:
    responses.get(f"{BASE}/cards", json=fixture("cards_sv1_page1.json"))
    responses.get(f"{BASE}/cards", json=fixture("cards_sv1_page2.json"))

    rows = source.collect("sv1", dt.date(2024, 1, 1), dt.date(2024, 5, 31))

    assert rows.empty
    assert list(rows.columns) == list(HISTORY_COLUMNS)


@responses.activate
def test_an_empty_set_is_an_empty_table_after_one_call(source: PokemonTcgSource) -> None:
    empty = {"data": [], "page": 1, "pageSize": 250, "count": 0, "totalCount": 0}
    responses.get(f"{BASE}/cards", json=empty)

    rows = source.collect("sv99", dt.date(2024, 6, 1), dt.date(2024, 6, 1))

    assert rows.empty and list(rows.columns) == list(HISTORY_COLUMNS)
    assert len(responses.calls) == 1


@responses.activate
def test_list_sets_keeps_the_sets_released_by_the_day(source: PokemonTcgSource) -> None:
    responses.get(f"{BASE}/sets", json=fixture("sets.json"))

    assert source.list_sets(dt.date(2023, 6, 1)) == ["base1", "sv1"]
    assert source.list_sets(dt.date(2024, 1, 1)) == ["base1", "sv1", "sv3pt5"]


@responses.activate
def test_configured_sets_need_no_call() -> None:
    source = PokemonTcgSource(HttpClient(BASE), sets=["sv1", "sv2"])

    assert source.list_sets(dt.date(2024, 6, 1)) == ["sv1", "sv2"]
    assert len(responses.calls) == 0


@responses.activate
def test_an_unknown_set_is_a_source_error(source: PokemonTcgSource) -> None:
    responses.get(f"{BASE}/cards", status=404, json={"error": {"message": "Not Found"}})

    with pytest.raises(SourceError, match="HTTP 404"):
        source.collect("nope", dt.date(2024, 6, 1), dt.date(2024, 6, 1))


@responses.activate
def test_without_a_key_parameter_no_key_header_is_sent() -> None:
    source = PokemonTcgSource.from_settings(Settings(pokemontcg_api_key_parameter=None))
    responses.get(f"{BASE}/sets", json=fixture("sets.json"))

    source.list_sets(dt.date(2024, 1, 1))

    assert "X-Api-Key" not in responses.calls[0].request.headers


# --- the key, from SSM Parameter Store and Secrets Manager (moto) -------------------------


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):
    """A mocked AWS account, with Powertools' cached values and clients forgotten."""
    for name, value in {
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    parameters.clear_caches()
    parameters.base.DEFAULT_PROVIDERS.clear()
    with mock_aws():
        yield
    parameters.clear_caches()
    parameters.base.DEFAULT_PROVIDERS.clear()


@responses.activate
def test_the_key_comes_from_an_ssm_secure_string_and_never_shows(
    aws: None, caplog: pytest.LogCaptureFixture
) -> None:
    # Our code and the HTTP stack at their most talkative (botocore's own DEBUG output of the
    # SSM response is not ours, and Lambda does not run at that level).
    caplog.set_level(logging.DEBUG, logger="pokewatch")
    caplog.set_level(logging.DEBUG, logger="urllib3")
    boto3.client("ssm").put_parameter(Name=PARAMETER, Value=KEY, Type="SecureString")
    settings = Settings(
        pokemontcg_api_key_parameter=PARAMETER, http_backoff_seconds=0, http_max_attempts=2
    )
    source = PokemonTcgSource.from_settings(settings)
    key_header = matchers.header_matcher({"X-Api-Key": KEY})
    responses.get(f"{BASE}/sets", status=429, headers={"Retry-After": "0"}, match=[key_header])
    responses.get(f"{BASE}/sets", json=fixture("sets.json"), match=[key_header])
    responses.get(f"{BASE}/cards", status=401, body=f"bad key {KEY}", match=[key_header])

    assert source.list_sets(dt.date(2024, 1, 1)) == ["base1", "sv1", "sv3pt5"]
    with pytest.raises(SourceError) as caught:
        source.collect("sv1", dt.date(2024, 6, 1), dt.date(2024, 6, 1))

    assert "HTTP 401" in str(caught.value)
    assert KEY not in str(caught.value)
    assert KEY not in caplog.text
    assert KEY not in repr(source.client.__dict__)


def test_the_key_is_read_once(aws: None) -> None:
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=PARAMETER, Value=KEY, Type="SecureString")
    key = ApiKey(PARAMETER)

    assert key.known() == []  # nothing read before first use
    assert key.get() == KEY
    ssm.delete_parameter(Name=PARAMETER)
    assert key.get() == KEY
    assert PARAMETER in repr(key) and KEY not in repr(key)


def test_keys_from_secrets_manager_by_name_or_arn(aws: None) -> None:
    arn = boto3.client("secretsmanager").create_secret(Name="pokewatch/tracker", SecretString=KEY)[
        "ARN"
    ]

    assert read_api_key("secret:pokewatch/tracker") == KEY
    assert read_api_key(arn) == KEY


def test_a_missing_parameter_is_a_source_error_naming_it(aws: None) -> None:
    with pytest.raises(SourceError, match="/pokewatch/absent"):
        read_api_key("/pokewatch/absent")


@responses.activate
def test_a_server_that_pages_without_end_is_a_source_error(
    source: PokemonTcgSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No totalCount and a full page whatever `page` asks: without a limit, pages until timeout.
    monkeypatch.setattr(base, "MAX_LIST_ITEMS", 10)
    body = fixture("cards_sv1_page1.json")
    del body["totalCount"]
    responses.get(f"{BASE}/cards", json=body)

    with pytest.raises(SourceError, match="more than 10 items"):
        source.collect("sv1", dt.date(2024, 6, 1), dt.date(2024, 6, 1))
    assert len(responses.calls) == 6
