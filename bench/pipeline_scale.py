"""How the pipeline's data steps grow with the market (SPEC section 9), as one JSON object.

    .venv/bin/python bench/pipeline_scale.py [--sizes 1000,3000,10000] [--days 730]
                                             [--loop-cards 3000] [--no-full-run]

Three measurements, each in a fresh child process so that its peak resident memory is its own
(`os.wait4` gives the rusage of exactly that child):

- `steps`: for each market size, the sample market collected into a local store (plan + collect,
  as the Map would), then `preprocess.build_dataset`, `train.train_model` and
  `validate.validate_model` called directly: seconds per step, and the child's peak RSS after
  each step (a running maximum: RSS peaks are not separable per step in one process).
  Goal: under 120 s and 3 GB for preprocess + train + validate at 10,000 cards × 730 days,
  growing no worse than linearly.
- `full_run`: `pokewatch pipeline run --source sample` at the largest size, collection included,
  through the real state machine. Goal: under 180 s and 3 GB.
- `features`: `pokewatch.features.build_features` against the original system's per-card
  Python loop (`per_card_loop_features`) on the same history, with the largest difference of
  the columns both compute.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
AS_OF = dt.date(2026, 11, 27)
STEP_SECONDS_GOAL = 120.0
FULL_RUN_SECONDS_GOAL = 180.0
MEMORY_GOAL_MB = 3 * 1024.0


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_child(argv: list[str]) -> tuple[str, float, float, int]:
    """Run `argv` to completion: (stdout, wall seconds, peak RSS MiB of that child, exit code)."""
    started = time.perf_counter()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=REPO) as child:
        assert child.stdout is not None
        out = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    return out, round(seconds, 2), round(usage.ru_maxrss / 1024, 1), child.returncode


# --- one market size, in its own process --------------------------------------------------


def collected_store(cards: int, days: int, root: Path) -> tuple[Any, Any, Any, float]:
    """A local store holding the sample market's raw history: (store, settings, preprocess
    input, seconds the collection took)."""
    from pokewatch.pipeline.collect import collect_set
    from pokewatch.pipeline.plan import plan_run
    from pokewatch.settings import Settings
    from pokewatch.steps import PreprocessInput, RunRequest
    from pokewatch.store import LocalStore

    store = LocalStore(root)
    settings = Settings(store=store.uri)
    started = time.perf_counter()
    plan = plan_run(
        RunRequest(source="sample", as_of=AS_OF, cards=cards, history_days=days), settings, store
    )
    collected = [collect_set(item, settings, store).model_dump(mode="json") for item in plan.items]
    seconds = time.perf_counter() - started
    return store, settings, PreprocessInput(run=plan.run, collected=collected), seconds


def measure_steps(cards: int, days: int) -> dict[str, Any]:
    """Collect, then preprocess, train and validate one market size; seconds and peak RSS."""
    from pokewatch.pipeline.preprocess import build_dataset
    from pokewatch.pipeline.train import train_model
    from pokewatch.pipeline.validate import validate_model

    with tempfile.TemporaryDirectory(prefix="pokewatch-scale-") as root:
        store, settings, request, collect_seconds = collected_store(cards, days, Path(root))
        steps: dict[str, dict[str, float]] = {
            "collect": {"seconds": round(collect_seconds, 2), "peak_rss_mb": peak_rss_mb()}
        }

        def timed(name: str, call: Any, *args: Any) -> Any:
            started = time.perf_counter()
            answer = call(*args, settings, store)
            steps[name] = {
                "seconds": round(time.perf_counter() - started, 2),
                "peak_rss_mb": peak_rss_mb(),
            }
            return answer

        dataset = timed("preprocess", build_dataset, request)
        trained = timed("train", train_model, dataset)
        validated = timed("validate", validate_model, trained)
    pipeline_seconds = sum(steps[s]["seconds"] for s in ("preprocess", "train", "validate"))
    return {
        "cards": cards,
        "days": days,
        "rows": dataset.rows,
        "steps": steps,
        "preprocess_train_validate_seconds": round(pipeline_seconds, 2),
        "gate_passed": validated.gate.passed,
        "gate_summary": validated.gate.summary,
    }


# --- the original system's per-card loop ---------------------------------------------------


def per_card_loop_features(
    history: pd.DataFrame, horizon_days: int, spike_factor: float
) -> pd.DataFrame:
    """The features of `build_features` that the original system computed, card by card:
    for each card, sort its rows, then rolling mean of 3, returns over observations and days,
    rolling volatility and distances to the rolling max / min / mean, and the target."""
    from pokewatch.features import (
        RETURN_DAYS,
        RETURN_OBS,
        TARGET_WINDOW_DAYS,
        WINDOW_DAYS,
        clean_history,
        median_step_days,
    )

    h = clean_history(history, spike_factor)
    step = max(median_step_days(h), 1.0)
    frames = []
    for card_id, card in h.groupby("card_id", sort=False):
        card = card.sort_values("date")
        price = card["market_price"]
        log_price = np.log(price)
        out = pd.DataFrame({"card_id": card_id, "date": card["date"], "log_price": log_price})
        out["dev_mean3"] = log_price - np.log(price.rolling(3, min_periods=1).mean())
        for k in RETURN_OBS:
            out[f"ret_{k}obs"] = log_price - log_price.shift(k)
        by_date = pd.Series(log_price.to_numpy(), index=card["date"])
        for d in RETURN_DAYS:
            # The last price on or before date − d days (asof), as the per-card code looked it up.
            lagged = by_date.asof(card["date"] - pd.Timedelta(days=d))
            out[f"ret_{d}d"] = log_price.to_numpy() - lagged.to_numpy()
        for w in WINDOW_DAYS:
            n_obs = max(2, round(w / step))
            window = log_price.rolling(n_obs, min_periods=1)
            out[f"vol_{w}d"] = out["ret_1obs"].rolling(n_obs, min_periods=1).std() / np.sqrt(step)
            out[f"dist_max_{w}d"] = log_price - window.max()
            out[f"dist_min_{w}d"] = log_price - window.min()
            out[f"dist_mean_{w}d"] = log_price - window.mean()
        target = []
        dates = card["date"].to_list()
        for i, date in enumerate(dates):
            actual = np.nan
            for j in range(i + 1, len(dates)):
                gap = (dates[j] - date).days
                if gap > horizon_days + TARGET_WINDOW_DAYS:
                    break
                if gap >= horizon_days:
                    actual = log_price.iat[j] - log_price.iat[i]
                    break
            target.append(actual)
        out["target"] = target
        frames.append(out)
    return pd.concat(frames, ignore_index=True)


def compare_features(cards: int, days: int) -> dict[str, Any]:
    """Time both feature computations on the same sample history; the largest difference."""
    from pokewatch.features import build_features
    from pokewatch.history import load_raw_history
    from pokewatch.settings import Settings

    with tempfile.TemporaryDirectory(prefix="pokewatch-features-") as root:
        store, _, _, _ = collected_store(cards, days, Path(root))
        history = load_raw_history(store, "sample", AS_OF)
    settings = Settings()
    horizon = settings.horizon_days
    started = time.perf_counter()
    vectorised = build_features(history, horizon, settings.price_spike_factor)
    vectorised_seconds = time.perf_counter() - started
    started = time.perf_counter()
    looped = per_card_loop_features(history, horizon, settings.price_spike_factor)
    loop_seconds = time.perf_counter() - started

    keys = ["card_id", "date"]
    both = vectorised.merge(looped, on=keys, suffixes=("", "_loop"), validate="one_to_one")
    common = [c for c in looped.columns if c not in keys]
    differences = {
        c: float(np.nanmax(np.abs(both[c].to_numpy(float) - both[f"{c}_loop"].to_numpy(float))))
        for c in common
    }
    return {
        "cards": cards,
        "days": days,
        "rows": len(history),
        "columns_compared": len(common),
        "vectorised_seconds": round(vectorised_seconds, 2),
        "per_card_loop_seconds": round(loop_seconds, 2),
        "speedup": round(loop_seconds / vectorised_seconds, 1),
        "max_abs_difference": max(differences.values()),
        "peak_rss_mb": peak_rss_mb(),
    }


# --- the parent: one child per measurement -------------------------------------------------


def child_json(argv: list[str]) -> tuple[dict[str, Any], float]:
    """Run this file as a child with `argv`; its JSON answer and its own peak RSS."""
    out, _, peak, code = run_child([sys.executable, __file__, *argv])
    if code != 0:
        raise SystemExit(f"child {argv} failed with exit code {code}")
    # Progress on stderr: a full run takes many minutes, and stdout is for the report alone.
    print(f"{' '.join(argv)}: {out.strip()} (peak RSS {peak} MiB)", file=sys.stderr, flush=True)
    return json.loads(out), peak


def full_run(cards: int, days: int) -> dict[str, Any]:
    """`pokewatch pipeline run` on the sample market into a fresh store."""
    with tempfile.TemporaryDirectory(prefix="pokewatch-run-") as root:
        argv = [
            str(Path(sys.executable).with_name("pokewatch")),
            "pipeline",
            "run",
            "--source",
            "sample",
            "--store",
            root,
            "--as-of",
            AS_OF.isoformat(),
            "--cards",
            str(cards),
            "--history-days",
            str(days),
            "--no-wait",
        ]
        out, seconds, peak, code = run_child(argv)
    return {
        "cards": cards,
        "days": days,
        "exit_code": code,
        "promoted": code == 0,
        "state_seconds": {
            line[2:].split(" (")[0]: float(line.rsplit("(", 1)[1].rstrip("s)"))
            for line in out.splitlines()
            if line.startswith("✔ ") and line.endswith("s)")
        },
        "seconds": seconds,
        "peak_rss_mb": peak,
        "goal_met": seconds < FULL_RUN_SECONDS_GOAL and peak < MEMORY_GOAL_MB,
    }


def main() -> None:
    """Parse the options; as a child measure one thing, as the parent run every child."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,3000,10000", help="market sizes (cards)")
    parser.add_argument("--days", type=int, default=730, help="history length in days")
    parser.add_argument("--loop-cards", type=int, default=3000, help="cards of the loop compare")
    parser.add_argument("--no-full-run", action="store_true", help="skip `pipeline run`")
    parser.add_argument("--child", choices=["steps", "features"], help=argparse.SUPPRESS)
    parser.add_argument("--cards", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "steps":
        print(json.dumps(measure_steps(args.cards, args.days)))
        return
    if args.child == "features":
        print(json.dumps(compare_features(args.cards, args.days)))
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    steps = []
    for cards in sizes:
        answer, peak = child_json(
            ["--child", "steps", "--cards", str(cards), "--days", str(args.days)]
        )
        steps.append({**answer, "child_peak_rss_mb": peak})
    largest = steps[-1]
    base = steps[0]
    growth = (
        largest["preprocess_train_validate_seconds"] / base["preprocess_train_validate_seconds"]
    ) / (largest["rows"] / base["rows"])
    report: dict[str, Any] = {
        "steps": steps,
        "steps_goal": {
            "cards": largest["cards"],
            "seconds": largest["preprocess_train_validate_seconds"],
            "peak_rss_mb": largest["child_peak_rss_mb"],
            # Time per row at the largest size relative to the smallest: <= 1 is linear or better.
            "time_growth_vs_linear": round(growth, 2),
            "met": largest["preprocess_train_validate_seconds"] < STEP_SECONDS_GOAL
            and largest["child_peak_rss_mb"] < MEMORY_GOAL_MB,
        },
    }
    if not args.no_full_run:
        report["full_run"] = full_run(sizes[-1], args.days)
    features, _ = child_json(
        ["--child", "features", "--cards", str(args.loop_cards), "--days", str(args.days)]
    )
    report["features"] = features
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
