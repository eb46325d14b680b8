"""`get_source`: one name per price source of SPEC section 4, configured from settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from pokewatch.settings import Settings
from pokewatch.sources.base import SourceError
from pokewatch.sources.csv_file import CsvSource
from pokewatch.sources.pokemontcg import PokemonTcgSource
from pokewatch.sources.pricetracker import PriceTrackerSource
from pokewatch.sources.registry import SOURCE_NAMES, get_source


def test_every_source_of_the_spec_has_a_name() -> None:
    assert set(SOURCE_NAMES) == {"sample", "pokemontcg", "pricetracker", "csv"}


def test_the_sample_market_uses_the_seed_and_size_of_the_settings() -> None:
    source = get_source("sample", Settings(sample_seed=11, sample_cards=120))

    assert source.name == "sample"


def test_the_csv_source_reads_the_configured_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_text("card_id,date,market_price\nsv1-1_normal,2024-01-07,1.25\n", encoding="utf-8")

    source = get_source("csv", Settings(csv_input=str(path), csv_max_bad_share=0.2))

    assert isinstance(source, CsvSource)
    assert source.max_bad_share == 0.2
    assert source.list_sets(source.history["date"].max().date()) == ["sv1"]


def test_the_csv_source_needs_a_file_named_by_the_run_or_the_setting() -> None:
    # `pokewatch invoke plan` with {"source": "csv"} was told only of the setting; the event's
    # own `input` is the way a run names its file.
    with pytest.raises(SourceError) as refused:
        get_source("csv", Settings(csv_input=None))
    assert str(refused.value) == (
        "the csv source needs a file: the run's `input` (`pokewatch pipeline run --input PATH`), "
        "or POKEWATCH_CSV_INPUT"
    )


def test_the_api_sources_take_urls_and_sets_from_the_settings() -> None:
    settings = Settings(
        sets=["sv1", "sv2"],
        pokemontcg_url="http://localhost:9000/v2/",
        pricetracker_api_key_parameter="/pokewatch/pricetracker-key",
        http_max_attempts=2,
    )

    pokemontcg = get_source("pokemontcg", settings)
    pricetracker = get_source("pricetracker", settings)

    assert isinstance(pokemontcg, PokemonTcgSource)
    assert pokemontcg.client.base_url == "http://localhost:9000/v2"
    assert pokemontcg.client.max_attempts == 2
    assert isinstance(pricetracker, PriceTrackerSource)
    assert pricetracker.sets == ["sv1", "sv2"]


def test_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(SourceError, match="sample, pokemontcg, pricetracker, csv"):
        get_source("ebay", Settings())
