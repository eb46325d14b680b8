"""Which price source a name stands for (SPEC section 4)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

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
            return _sample_market(settings.sample_seed, settings.sample_cards)
        case "pokemontcg":
            from pokewatch.sources.pokemontcg import PokemonTcgSource

            return PokemonTcgSource.from_settings(settings)
        case "pricetracker":
            from pokewatch.sources.pricetracker import PriceTrackerSource

            return PriceTrackerSource.from_settings(settings)
        case "csv":
            if not settings.csv_input:
                # The run's `input` fills this in; an event without one named only the setting.
                raise SourceError(
                    "the csv source needs a file: the run's `input` (`pokewatch pipeline run "
                    "--input PATH`), or POKEWATCH_CSV_INPUT"
                )
            path = Path(settings.csv_input)
            # The file's identity is part of the key: an edited file is read again.
            stamp = path.stat().st_mtime_ns if path.is_file() else None
            return _csv_source(
                str(path), stamp, settings.csv_max_bad_share, settings.price_spike_factor
            )
    raise SourceError(f"unknown price source {name!r}; known: {', '.join(SOURCE_NAMES)}")


@lru_cache(maxsize=4)
def _sample_market(seed: int, n_cards: int) -> PriceSource:
    """One market per seed and size for the whole process: building a 10,000-card market takes
    about half a second, and the Map calls collect once per set (a warm Lambda reuses it too)."""
    from pokewatch.sources.sample import SampleMarket

    return SampleMarket(seed=seed, n_cards=n_cards)


@lru_cache(maxsize=4)
def _csv_source(
    path: str, stamp: int | None, max_bad_share: float, spike_factor: float
) -> PriceSource:
    """One reader per file version for the whole process: the Map collects set by set, and each
    set would otherwise parse the whole file again."""
    from pokewatch.sources.csv_file import CsvSource

    return CsvSource(path, max_bad_share, spike_factor)
