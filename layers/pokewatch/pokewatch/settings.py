"""One settings object for the whole system, read from `POKEWATCH_*` environment variables.

Defaults work on a laptop: the local store under `.pokewatch/store` and the offline sample market.

A pydantic model that reads the environment itself: pydantic-settings would do the same for a
prefix and one comma-separated list, but importing it costs the API function ~50 ms of cold start.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pokewatch.card_ids import SetId
from pokewatch.price_limits import SPIKE_FACTOR

_ENV_PREFIX = "pokewatch_"


#: The sample market's size at most: the market the deployed functions' memory is sized for
#: (docs/scaling.md). A typo (a million cards) ran until collect or preprocess ran out of memory.
MAX_SAMPLE_CARDS = 20_000
#: A first run's backfill at most, ten years: a run learns from `history_window_days` only.
MAX_BACKFILL_DAYS = 3_650


class Settings(BaseModel):
    """Thresholds, horizon, source and store of PokeWatch."""

    model_config = ConfigDict(extra="ignore")

    #: Artifact store URI: `s3://bucket[/prefix]` or a local directory.
    store: str = ".pokewatch/store"

    # --- collection -------------------------------------------------------------------------
    source: str = "sample"
    #: Sets to collect; empty means "every set the source knows".
    sets: list[SetId] = Field(default_factory=list)
    csv_input: str | None = None
    #: Share of bad rows in a CSV above which the run stops instead of skipping them.
    csv_max_bad_share: float = Field(default=0.05, ge=0, le=1)
    sample_seed: int = 7
    sample_cards: int = Field(default=300, ge=1, le=MAX_SAMPLE_CARDS)
    sample_history_days: int = Field(default=400, ge=1, le=MAX_BACKFILL_DAYS)
    pokemontcg_api_key_parameter: str | None = None
    pricetracker_api_key_parameter: str | None = None
    #: Longest wait for one read of an API source's connection (connect, headers, each piece
    #: of a body).
    http_timeout_seconds: float = 10.0
    #: Longest time one HTTP request may take in all, its body read to the end: a server that
    #: trickles a byte every few seconds never trips the read timeout. A failure is retried as
    #: a timeout. Generous for a large page of a slow API, yet four attempts fit in the collect
    #: function's 300 s (and the client stops before the function's end anyway).
    http_deadline_seconds: float = Field(default=60.0, gt=0)
    http_max_attempts: int = Field(default=5, ge=1)
    #: Backoff of the API sources: full jitter under `base * 2**attempt`, capped. A longer
    #: `Retry-After` ends the attempts at once, so that the state machine's retry waits instead.
    http_backoff_seconds: float = Field(default=1.0, ge=0)
    http_backoff_max_seconds: float = Field(default=30.0, ge=0)
    pokemontcg_url: str = "https://api.pokemontcg.io/v2"
    pricetracker_url: str = "https://www.pokemonpricetracker.com/api/v2"

    # --- model ------------------------------------------------------------------------------
    #: A price this many times above or below both its card's neighbouring prices (which agree)
    #: is a typo, named in warnings and left out of features, training and backtest
    #: (`pokewatch.price_spikes`; the default's measurement is at `SPIKE_FACTOR`).
    price_spike_factor: float = Field(default=SPIKE_FACTOR, gt=1)
    #: Days of history, up to the latest price, that a run learns from and backtests on. Older
    #: raw partitions stay in the store but are not read, so a run's time and memory stop
    #: growing with the years collected (the backtest needs about a year).
    history_window_days: int = Field(default=730, ge=1)
    horizon_days: int = Field(default=28, ge=1, le=365)
    interval_level: float = Field(default=0.80, gt=0, lt=1)
    #: BUY at or below this deviation from the expected price, SELL at or above the other: a
    #: fall and a rise as fractions (-0.10, 0.15). A fall written without its sign (0.10) made
    #: every card a BUY, a percentage (-10) no card ever. A SELL above +500% (`le=5`) is taken
    #: for a percentage too (15 for 15%): no collector waits for a card to be six times its price.
    buy_threshold: float = Field(default=-0.10, gt=-1, lt=0)
    sell_threshold: float = Field(default=0.15, gt=0, le=5)
    #: How many days of per-card history the serving file keeps (for `/cards/{id}`, `date=`).
    serving_history_days: int = Field(default=120, ge=1)

    # --- backtest (walk-forward, SPEC section 6) ---------------------------------------------
    #: Span of the origins, ending at the last origin whose actual can be observed.
    backtest_days: int = Field(default=182, ge=1)
    #: Minimum spacing of origins (every weekly date; one day in 7 on daily data).
    backtest_origin_step_days: int = Field(default=7, ge=1)
    #: How often the model is refitted between origins (each origin uses the latest refit).
    backtest_refit_days: int = Field(default=28, ge=1)
    #: Rows the model trains on at most (daily histories of many cards are subsampled: their
    #: neighbouring days are near duplicates). Each backtest refit fits four times on up to
    #: this many rows, which bounds the train step's time on 10,000 cards × 730 days.
    model_max_train_rows: int = Field(default=100_000, ge=1_000)
    #: Walk-forward refits fitted at once, in threads (each with one OpenMP thread).
    model_fit_workers: int = Field(default=2, ge=1)

    # --- quality gate -----------------------------------------------------------------------
    max_mape: float = 0.20
    min_card_coverage: float = 0.80
    #: Relative slack vs. the naive forecast and vs. the champion before a model is rejected.
    naive_tolerance: float = 0.0
    #: Standard errors of the backtest's model − naive MAPE difference that count as noise: a
    #: model is "worse than naive" only beyond them (0: any measured difference counts).
    naive_noise_sigmas: float = Field(default=2.0, ge=0)
    champion_tolerance: float = 0.05
    #: Largest |interval_coverage − interval_level| the gate accepts.
    interval_coverage_tolerance: float = Field(default=0.10, ge=0, le=1)
    #: Standard errors of a fifth of the pairs' coverage that count as noise when the gate
    #: holds each fifth by interval width to `interval_coverage_tolerance` too (an interval must
    #: hold for quiet and volatile cards alike, not only on average).
    interval_noise_sigmas: float = Field(default=2.0, ge=0)

    # --- serving ----------------------------------------------------------------------------
    model_ttl_seconds: float = 60.0

    @model_validator(mode="before")
    @classmethod
    def _from_environment(cls, given: Any) -> Any:
        """Fields not given as arguments come from `POKEWATCH_<FIELD>` (in any case)."""
        if not isinstance(given, dict):
            return given
        environment = {
            name.lower().removeprefix(_ENV_PREFIX): value
            for name, value in os.environ.items()
            if name.lower().startswith(_ENV_PREFIX)
        }
        return {**environment, **given}

    @field_validator("sets", mode="before")
    @classmethod
    def _split_sets(cls, value: object) -> object:
        if isinstance(value, str):
            return [s.strip() for s in value.split(",") if s.strip()]
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once per cold start)."""
    return Settings()
