"""Which price source a name stands for (SPEC section 4)."""

from __future__ import annotations

from pokewatch.settings import Settings
from pokewatch.sources.base import PriceSource, SourceError

SOURCE_NAMES: tuple[str, ...] = ("sample", "pokemontcg", "pricetracker", "csv")


def get_source(name: str, settings: Settings) -> PriceSource:
    """The price source called `name`, configured from `settings`.

    Sources are imported when asked for, so that a function using one does not load the
    others (the simulator's numerics, the HTTP client).
    """
    match name:
        case "sample":
            from pokewatch.sources.sample import SampleMarket

            return SampleMarket(seed=settings.sample_seed, n_cards=settings.sample_cards)
        case "pokemontcg":
            from pokewatch.sources.pokemontcg import PokemonTcgSource

            return PokemonTcgSource.from_settings(settings)
        case "pricetracker":
            from pokewatch.sources.pricetracker import PriceTrackerSource

            return PriceTrackerSource.from_settings(settings)
        case "csv":
            from pokewatch.sources.csv_file import CsvSource

            if not settings.csv_input:
                raise SourceError("the csv source needs a file: set POKEWATCH_CSV_INPUT")
            return CsvSource(settings.csv_input, settings.csv_max_bad_share)
    raise SourceError(f"unknown price source {name!r}; known: {', '.join(SOURCE_NAMES)}")
