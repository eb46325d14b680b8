"""Train: backtest the model on the run's history, fit it on everything known, and write the
model, its metrics and the serving file under `models/<version>/`."""

from __future__ import annotations

import datetime as dt
import io
import json
import resource
import time

import numpy as np
import pandas as pd

from pokewatch import keys
from pokewatch.backtest import (
    add_signal,
    backtest_notes,
    current_price_days,
    metrics_of_pairs,
    walk_forward_pairs_of_features,
)
from pokewatch.card_day import epoch_days
from pokewatch.fair_price_model import FairPriceModel
from pokewatch.history import from_parquet_bytes
from pokewatch.price_spikes import spikes_left_out
from pokewatch.report import render_report
from pokewatch.serving import CardInfo, ModelFacts, serving_file_bytes
from pokewatch.settings import Settings
from pokewatch.steps import Dataset, TrainedModel
from pokewatch.store import ArtifactStore

#: `date.toordinal()` of 1970-01-01: numpy counts days from there, the serving file from year 1.
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def train_model(dataset: Dataset, settings: Settings, store: ArtifactStore) -> TrainedModel:
    """Fit, evaluate and write one candidate model version."""
    started = time.perf_counter()
    trained_at = dt.datetime.now(dt.UTC)
    version = dataset.run.run_id
    window_start = pd.Timestamp(dataset.data_as_of) - pd.Timedelta(
        days=settings.serving_history_days
    )
    # The features hold all that the backtest and the fit read; of the history only the card
    # attributes in the serving window are needed (the cards priced lately). Reading all of a
    # large daily history as well would double the step's memory.
    history = pd.read_parquet(
        io.BytesIO(store.get_bytes(dataset.history_key)),
        columns=[*CardInfo.model_fields, "date"],
        filters=[("date", ">=", window_start)],
    )
    features = from_parquet_bytes(store.get_bytes(dataset.features_key))

    pairs = walk_forward_pairs_of_features(features, settings)
    backtest = metrics_of_pairs(pairs, settings)
    # What `pokewatch backtest` says on stderr, for whoever reads the metrics or the report.
    notes = backtest_notes(backtest, pairs, features)
    if dataset.price_spikes:
        notes.insert(0, spikes_left_out(dataset.price_spikes, settings.price_spike_factor))
    model = FairPriceModel(
        settings.horizon_days,
        settings.interval_level,
        max_train_rows=settings.model_max_train_rows,
    )
    # The model takes the rows with a known target itself (without copying the whole table).
    model.fit(features)

    serving_rows = features[features["date"] >= window_start]
    predicted = serving_rows[["card_id", "date", "market_price"]].join(model.predict(serving_rows))
    predicted = predicted.dropna(subset=["fair_price"])
    facts = ModelFacts(
        model_version=version,
        trained_at=trained_at,
        data_as_of=dataset.data_as_of,
        horizon_days=settings.horizon_days,
        interval_level=settings.interval_level,
    )
    serving = serving_table_bytes(facts, history, predicted)
    metrics = {
        "version": version,
        "trained_at": trained_at.isoformat(),
        "backtest": backtest.model_dump(),
        "card_coverage": card_coverage(history, predicted, dataset.data_as_of, settings),
        "notes": notes,
        "data": dataset.model_dump(mode="json", exclude={"run"}),
        "run": dataset.run.model_dump(mode="json"),
        "settings": settings.model_dump(
            include={"horizon_days", "interval_level", "buy_threshold", "sell_threshold"}
        ),
        "train_seconds": round(time.perf_counter() - started, 2),
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    report = render_report(
        version,
        dataset.data_as_of,
        backtest,
        pairs,
        latest_opportunities(history, predicted, settings),
        settings,
        notes,
    )
    store.put_bytes(keys.model_artifact(version, "report.html"), report.encode(), "text/html")
    store.put_bytes(keys.model_artifact(version, "model.skops"), model.to_bytes())
    store.put_bytes(keys.model_artifact(version, keys.SERVING_FILE), serving)
    store.put_bytes(
        keys.model_artifact(version, keys.METRICS_FILE),
        json.dumps(metrics, indent=1, default=str).encode(),
        "application/json",
    )
    return TrainedModel(run=dataset.run, version=version, dataset=dataset)


def card_coverage(
    history: pd.DataFrame, predicted: pd.DataFrame, data_as_of: dt.date, settings: Settings
) -> float:
    """Share of the catalogue (every card in the serving window of `history`, priced or not)
    predicted from a current price: one no older than the backtest's price at a date
    (`current_price_days`). A source that stops returning some cards, or sets that fail for
    days, leave those cards on their old prices, and this share drops."""
    since = pd.Timestamp(data_as_of) - pd.Timedelta(days=current_price_days(settings))
    current = predicted.loc[predicted["date"] > since, "card_id"].nunique()
    return current / max(history["card_id"].nunique(), 1)


def latest_opportunities(
    history: pd.DataFrame, predicted: pd.DataFrame, settings: Settings
) -> pd.DataFrame:
    """Each card's latest prediction with its name, set, deviation and signal (for the report)."""
    latest = predicted.sort_values("date").drop_duplicates("card_id", keep="last")
    names = history.drop_duplicates("card_id", keep="last")[["card_id", "name", "set_name"]]
    latest = latest.merge(names, on="card_id", how="left")
    return add_signal(latest, "expected_price", settings)


def serving_table_bytes(facts: ModelFacts, history: pd.DataFrame, predicted: pd.DataFrame) -> bytes:
    """The serving file of the cards in `predicted` (rows card_id, date, market_price and the
    model's price columns), with the card attributes of their latest history row."""
    predicted = predicted.sort_values(["card_id", "date"], kind="stable")
    attributes = history.drop_duplicates("card_id", keep="last").set_index("card_id")
    counts = predicted.groupby("card_id", sort=True).size()
    cards = [
        CardInfo(
            card_id=card_id,
            **{
                f: str(attributes.at[card_id, f])
                for f in ("name", "set_id", "set_name", "rarity", "variant")
            },
        )
        for card_id in counts.index
    ]
    columns = {
        "day": (epoch_days(predicted["date"]) + _EPOCH_ORDINAL).astype(np.int32),
        "price": predicted["market_price"].to_numpy(np.float32),
        "fair": predicted["fair_price"].to_numpy(np.float32),
        "low": predicted["fair_price_low"].to_numpy(np.float32),
        "high": predicted["fair_price_high"].to_numpy(np.float32),
        "expected": predicted["expected_price"].to_numpy(np.float32),
    }
    return serving_file_bytes(facts, cards, counts.tolist(), columns)
