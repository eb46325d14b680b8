"""The `pokewatch` command's error handling: one clear line naming the file or option."""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import html
import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from market_fixtures import synthetic_market
from moto import mock_aws

from pokewatch import steps
from pokewatch.store import LocalStore
from pokewatch_local.cli import _parser, main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _invoke_with_event(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, function: str, event: bytes
) -> tuple[Path, int, str]:
    """Invoke `function` with `event` written to a file: the file, the exit code and stderr."""
    path = tmp_path / "event.json"
    path.write_bytes(event)
    code, _, err = _run(capsys, "invoke", function, "--event", str(path), "--store", str(tmp_path))
    return path, code, err


def test_invoke_with_malformed_event_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event, code, err = _invoke_with_event(
        capsys, tmp_path, "plan", b'{\n  "source": "sample",\n  oops\n}\n'
    )
    assert code == 2
    assert f"{event}:3:" in err


def test_invoke_with_an_event_that_is_not_utf8_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event, code, err = _invoke_with_event(capsys, tmp_path, "plan", b'{"source": "\xff"}')
    assert code == 2
    assert err.startswith(f"pokewatch: error: --event: {event}: not UTF-8")


def test_an_event_is_read_as_utf8_whatever_the_locale(tmp_path: Path) -> None:
    # Read in the locale's encoding, a UTF-8 event was "not UTF-8" under an ASCII locale, and
    # mojibake under a latin-1 one; a Lambda event is UTF-8 JSON.
    event = tmp_path / "event.json"
    event.write_text('{"source": "sample", "sets": ["pokémon"]}', encoding="utf-8")
    ascii_locale = {**os.environ, "LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}
    store = tmp_path / "store"
    command = ["invoke", "plan", "--event", str(event), "--store", str(store)]
    done = subprocess.run(
        [sys.executable, "-m", "pokewatch_local", *command],
        capture_output=True,
        env=ascii_locale,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [i["set_id"] for i in json.loads(done.stdout)["items"]] == ["pokémon"]


# The api handler raised before adding its metrics, which Powertools then warns of.
@pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")
@pytest.mark.parametrize("event", ["[1, 2]", '"x"', '{"httpMethod": "GET"}', "{}"])
def test_invoke_of_a_function_that_fails_answers_as_lambda_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], event: str
) -> None:
    # An event the api function cannot take: it was a Python traceback. Lambda answers the
    # error as the payload (stdout) and the command names the function, its error and the file.
    path = tmp_path / "event.json"
    path.write_text(event)
    code = main(["invoke", "api", "--event", str(path), "--store", str(tmp_path)])
    # The api module reads its model in a thread that logs; it must not outlive the capture.
    for thread in threading.enumerate():
        if thread.name in ("model-preload", "model-refresh"):
            thread.join(timeout=30)
    out, err = capsys.readouterr()
    assert code == 1
    answer = json.loads(out)
    assert set(answer) == {"errorMessage", "errorType", "stackTrace"}
    errors = [line for line in err.splitlines() if line.startswith("pokewatch: error:")]
    assert len(errors) == 1
    assert errors[0].startswith(f"pokewatch: error: api failed on {path}: {answer['errorType']}: ")


def test_invoke_of_a_step_with_an_invalid_event_names_its_fields_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, code, err = _invoke_with_event(capsys, tmp_path, "collect", b'{"set_id": 5}')
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"pokewatch: error: collect failed on {path}: invalid event: ")
    assert "set_id: " in last and "errors.pydantic.dev" not in err


def test_a_collect_event_whose_days_are_out_of_order_is_an_invalid_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = {"run_id": "r1", "source": "sample", "as_of": "2024-01-14", "cards": 20}
    event = {"run": run, "set_id": "base1", "start": "2024-01-14", "end": "2024-01-07"}
    path, code, err = _invoke_with_event(capsys, tmp_path, "collect", json.dumps(event).encode())
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        f"pokewatch: error: collect failed on {path}: invalid event: "
        "event: start 2024-01-14 is after end 2024-01-07"
    )


@pytest.mark.parametrize("set_id", ["../../../dt=2024-01-07/set=sv1", "a/b", ".."])
def test_a_set_id_that_is_a_path_is_an_invalid_event_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], set_id: str
) -> None:
    # The set id is part of the raw partition's key: `..` wrote outside the day's partition,
    # over a snapshot stored before (the local store only stops a key leaving the store).
    run = {"run_id": "r1", "source": "sample", "as_of": "2024-01-14", "cards": 20}
    event = {"run": run, "set_id": set_id, "start": "2024-01-14", "end": "2024-01-14"}
    store = tmp_path / "store"
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))

    code, _, err = _run(capsys, "invoke", "collect", "--event", str(path), "--store", str(store))

    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"pokewatch: error: collect failed on {path}: invalid event: set_id: ")
    assert not store.exists() or not any(store.rglob("*.parquet"))


@pytest.mark.parametrize("sets", ["", " , "])
def test_a_run_for_a_blank_set_list_is_refused_not_read_as_every_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sets: str
) -> None:
    code, out, err = _run(capsys, "pipeline", "run", "--sets", sets, "--store", str(tmp_path))
    assert (code, out) == (2, "")
    assert err == f"pokewatch: error: --sets names no set: {sets!r}\n"
    assert not any(tmp_path.iterdir())


def test_a_run_for_a_set_id_that_is_a_path_is_refused_naming_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(
        capsys, "pipeline", "run", "--sets", "sv1,a/../b", "--store", str(tmp_path)
    )
    assert (code, out) == (2, "")
    # It said only "String should match pattern '^\\w[\\w.\\-]*$'", and not which set.
    assert err == (
        "pokewatch: error: --sets: must be a set id such as sv1: letters, digits, '.', '_' or "
        "'-', starting with a letter, digit or '_', found 'a/../b'\n"
    )
    assert not any(tmp_path.iterdir())


def test_a_set_id_in_the_environment_that_is_not_one_is_named_with_its_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POKEWATCH_SETS", "sv1, base 4")
    code, out, err = _run(capsys, "pipeline", "run", "--store", str(tmp_path))
    assert (code, out) == (2, "")
    assert err.startswith("pokewatch: error: POKEWATCH_SETS: must be a set id such as sv1: ")
    assert err.endswith(", found 'base 4'\n")


def test_invoke_unknown_function_lists_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "invoke", "nope", "--store", str(tmp_path))
    assert code == 2
    assert "no function 'nope'" in err and "collect" in err


def test_pipeline_csv_needs_an_existing_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "pipeline", "run", "--source", "csv", "--store", str(tmp_path))
    assert code == 2 and "--input" in err
    missing = tmp_path / "missing.csv"
    code, _, err = _run(
        capsys,
        "pipeline",
        "run",
        "--source",
        "csv",
        "--input",
        str(missing),
        "--store",
        str(tmp_path),
    )
    assert code == 2 and str(missing) in err


@pytest.mark.parametrize("command", [["backtest"], ["pipeline", "run", "--source", "csv"]])
def test_an_input_that_is_a_directory_is_named_as_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    store = ["--store", str(tmp_path / "store")] if command[0] == "pipeline" else []
    code, _, err = _run(capsys, *command, "--input", str(tmp_path), *store)
    assert code == 2
    assert err == f"pokewatch: error: --input: {tmp_path} is a directory; give the CSV file in it\n"


@pytest.mark.parametrize("command", [["backtest"], ["pipeline", "run", "--source", "csv"]])
def test_an_input_that_is_a_pipe_or_device_is_refused_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    store = ["--store", str(tmp_path / "store")] if command[0] == "pipeline" else []
    code, _, err = _run(capsys, *command, "--input", os.devnull, *store)
    assert code == 2
    assert err == (
        f"pokewatch: error: --input: {os.devnull} is not a regular file; "
        "save the CSV to a file first\n"
    )


@pytest.mark.parametrize("command", [["backtest"], ["pipeline", "run", "--source", "csv"]])
def test_an_input_that_is_a_url_is_refused_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    # The pipeline took s3:// past its checks, then ran with /cwd/s3:/bucket/prices.csv (a
    # Path of the URL) and failed in Plan with "No such file"; the csv source reads local files.
    store = tmp_path / "store"
    url = "s3://bucket/prices.csv"
    options = ["--store", str(store)] if command[0] == "pipeline" else []
    code, _, err = _run(capsys, *command, "--input", url, *options)
    assert code == 2
    assert err == (
        f"pokewatch: error: --input: {url} is not a local file; the csv source reads a file "
        "on this disk (download it first)\n"
    )
    assert not store.exists()


def test_backtest_reports_a_bad_file_with_its_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "prices.csv"
    bad.write_text("card_id,date,market_price\nbase1-4_holofoil,not-a-date,3.0\n,2024-01-01,-2\n")
    code, _, err = _run(capsys, "backtest", "--input", str(bad))
    assert code == 2
    assert f"{bad}:2" in err and f"{bad}:3" in err


def _market_csv(path: Path, weeks: int) -> Path:
    """A long CSV of a synthetic weekly market of 40 cards (0 weeks: the header alone)."""
    columns = ["card_id", "date", "market_price", "volume", "rarity", "variant", "release_date"]
    if weeks == 0:
        path.write_text(",".join(columns) + "\n")
        return path
    history = synthetic_market(8, cards=40, weeks=weeks, reversion=0.5, volatility=0.05)
    history[columns].to_csv(path, index=False, date_format="%Y-%m-%d")
    return path


def test_backtest_json_has_the_spec_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prices = _market_csv(tmp_path / "prices.csv", weeks=60)
    code, out, err = _run(capsys, "backtest", "--input", str(prices), "--json")
    assert code == 0, err
    metrics = json.loads(out)
    spec = {"mape_model", "mape_naive", "mape_rolling_mean_3", "interval_coverage"}
    spec |= {"signal_spread_model", "signal_spread_rule", "n_pairs", "buy_count", "sell_count"}
    assert spec | {"rule_buy_count", "rule_sell_count", "mape_difference_se"} <= set(metrics)
    assert metrics["n_cards"] == 40 and metrics["n_refits"] >= 3
    assert "note:" not in err


def test_backtest_of_a_short_history_says_how_little_it_rests_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prices = _market_csv(tmp_path / "prices.csv", weeks=28)
    code, out, err = _run(capsys, "backtest", "--input", str(prices), "--json")
    assert code == 0, err
    refits = json.loads(out)["n_refits"]
    assert refits < 3
    assert f"pokewatch: note: only {refits} walk-forward refit(s)" in err
    code, _, err = _run(capsys, "backtest", "--input", str(prices), "--horizon-days", "3")
    assert code == 0, err
    assert "horizon (3 days) is shorter than the history's spacing (7 days)" in err


@pytest.mark.parametrize(
    ("weeks", "message"),
    [
        (
            12,
            "the history is too short for a 28-day walk-forward backtest: its prices span 77 days",
        ),
        (0, "no priced rows"),
    ],
)
def test_backtest_of_too_little_history_is_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], weeks: int, message: str
) -> None:
    prices = _market_csv(tmp_path / "prices.csv", weeks=weeks)
    code, out, err = _run(capsys, "backtest", "--input", str(prices))
    assert code == 2 and out == ""
    assert err.startswith(f"pokewatch: error: {prices}: ") and message in err
    assert "Traceback" not in err


def test_backtest_horizon_is_held_to_the_settings_bounds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prices = _market_csv(tmp_path / "prices.csv", weeks=12)
    code, _, err = _run(capsys, "backtest", "--input", str(prices), "--horizon-days", "400")
    assert code == 2
    # Named as the user wrote it: the option, not the setting behind it.
    assert err == "pokewatch: error: --horizon-days: Input should be less than or equal to 365\n"


@pytest.mark.parametrize(
    "argv",
    [
        ("pipeline", "run"),
        ("invoke", "plan"),
        ("serve", "--host", "no-such-host.invalid"),  # fails fast, were it not refused
        ("backtest", "--input", "prices.csv"),
    ],
)
def test_a_bad_setting_is_named_by_its_environment_variable(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: tuple[str, ...],
) -> None:
    # A setting's own name (`sample_cards`) is nowhere the user wrote it; `invoke` called it an
    # invalid event and `serve` answered every request with a 500 and a traceback.
    _market_csv(tmp_path / "prices.csv", weeks=12)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("POKEWATCH_SAMPLE_CARDS", "abc")
    monkeypatch.setenv("POKEWATCH_STORE", str(tmp_path / "store"))
    code, out, err = _run(capsys, *argv)
    assert code == 2 and out == ""
    assert err == (
        "pokewatch: error: POKEWATCH_SAMPLE_CARDS: Input should be a valid integer, unable to "
        "parse string as an integer\n"
    )


DATE_RANGE = "must be a date from 1990-01-01 to 2100-12-31"


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--cards", "1000000", "Input should be less than or equal to 20000"),
        ("--history-days", "40000", "Input should be less than or equal to 3650"),
        *(("--as-of", day, DATE_RANGE) for day in ("0001-01-01", "1989-12-31", "9999-12-31")),
    ],
)
def test_a_run_beyond_the_request_limits_is_refused_before_it_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, message: str
) -> None:
    # A million sample cards ran until memory ran out; a day out of range failed in a step
    # (OverflowError 'date value out of range', or every set's OutOfBoundsDatetime). The run's
    # own validation would fail it only as a failed execution, with pydantic's message in JSON.
    code, out, err = _run(capsys, "pipeline", "run", option, value, "--store", str(tmp_path))
    assert (code, out) == (2, "")
    assert err == f"pokewatch: error: {option}: {message}\n"
    assert not any(tmp_path.iterdir())


def test_a_run_dated_in_the_future_is_refused_before_it_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(steps, "utc_today", lambda: dt.date(2026, 12, 31))
    argv = ["--as-of", "2027-01-02", "--store", str(tmp_path)]
    code, out, err = _run(capsys, "pipeline", "run", *argv)
    assert (code, out) == (2, "")
    assert err == (
        "pokewatch: error: --as-of: must not be after 2027-01-01 (tomorrow, UTC): "
        "that day has not come yet\n"
    )
    assert not any(tmp_path.iterdir())


def test_rejects_bad_option_values(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["pipeline", "run", "--as-of", "yesterday"])
    assert exit_info.value.code == 2
    assert "not a date" in capsys.readouterr().err


def test_models_commands_on_an_empty_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "models", "list", "--store", str(tmp_path))
    assert (code, out) == (0, "")
    assert err == f"no model in {tmp_path} yet: `pokewatch pipeline run` trains one\n"
    code, _, err = _run(capsys, "models", "rollback", "--store", str(tmp_path))
    assert code == 2 and "no earlier model" in err
    code, _, err = _run(capsys, "models", "promote", "v0", "--store", str(tmp_path))
    assert code == 2 and "no model 'v0' in" in err


@pytest.mark.parametrize(
    "argv", [["models", "list"], ["models", "rollback"], ["pipeline", "run", "--cards", "5"]]
)
def test_a_store_that_is_a_file_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    # It was a NotADirectoryError traceback (models) or a failed execution (pipeline run).
    not_a_directory = tmp_path / "store.txt"
    not_a_directory.write_text("x")
    code, _, err = _run(capsys, *argv, "--store", str(not_a_directory))
    assert code == 2
    assert f"{not_a_directory}" in err and "not a directory" in err


@pytest.mark.parametrize(
    "argv", [["models", "list"], ["models", "rollback"], ["models", "promote", "v1"]]
)
def test_a_store_that_cannot_be_reached_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    # A bucket that does not exist, or no credentials: it was a botocore traceback.
    with mock_aws():
        code, _, err = _run(capsys, *argv, "--store", "s3://no-such-bucket/dev")
    assert code == 2
    assert err.startswith("pokewatch: error: store s3://no-such-bucket/dev: ")
    assert "NoSuchBucket" in err and len(err.strip().splitlines()) == 1


def test_models_list_of_a_damaged_pointer_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for version in ("v1", "v2"):
        (tmp_path / "models" / version).mkdir(parents=True)
        (tmp_path / "models" / version / "metrics.json").write_text("{}")
    (tmp_path / "models" / "current.json").write_text("garbage")
    code, _, err = _run(capsys, "models", "list", "--store", str(tmp_path))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "models/current.json" in err and "models promote" in err
    # The versions that command takes: the listing it would have printed is what failed.
    assert err.rstrip().endswith("; versions in the store: v1, v2")


def test_models_list_of_metrics_with_a_score_missing_or_not_a_number_lists_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A score of another type, or a MAPE without the naive one, was a format traceback.
    for version, backtest in (
        ("v1", {"mape_model": "0.1", "mape_naive": 0.2}),
        ("v2", {"mape_model": 0.1}),
    ):
        (tmp_path / "models" / version).mkdir(parents=True)
        metrics = {"backtest": backtest, "gate": {"passed": True}}
        (tmp_path / "models" / version / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "models" / "v3").mkdir()
    metrics = {"backtest": {"mape_model": 0.1, "mape_naive": 0.2}, "gate": {"passed": False}}
    (tmp_path / "models" / "v3" / "metrics.json").write_text(json.dumps(metrics))
    code, out, _ = _run(capsys, "models", "list", "--store", str(tmp_path))
    assert code == 0
    assert out.splitlines() == [
        "  v1  no metrics  gate unvalidated",
        "  v2  no metrics  gate passed",
        "  v3  mape 0.1000 (naive 0.2000)  gate rejected",
    ]


def test_an_input_for_a_source_that_does_not_read_it_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # It was ignored: the run collected the sample market and trained on it without a word.
    monkeypatch.delenv("POKEWATCH_SOURCE", raising=False)
    prices = tmp_path / "prices.csv"
    prices.write_text("card_id,date,market_price\n")
    for source in ([], ["--source", "sample"]):
        code, _, err = _run(
            capsys, "pipeline", "run", *source, "--input", str(prices), "--store", str(tmp_path)
        )
        assert code == 2
        assert "--input" in err and "--source csv" in err
    assert not (tmp_path / "raw").exists()


def test_serve_on_a_port_it_cannot_have_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 99999 was served on 34463 (its value modulo 65536); a port in use was an OSError traceback.
    with pytest.raises(SystemExit) as usage_error:
        main(["serve", "--port", "99999", "--store", str(tmp_path)])
    assert usage_error.value.code == 2 and "99999" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        code, _, err = _run(capsys, "serve", "--port", port, "--store", str(tmp_path))
    assert code == 2
    assert f"127.0.0.1:{port}" in err and "in use" in err


def test_serve_on_a_host_that_does_not_resolve_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Waitress's ValueError "Invalid host/port specified." was a traceback.
    code, _, err = _run(capsys, "serve", "--host", "no-such-host.invalid", "--store", str(tmp_path))
    assert code == 2
    assert err.startswith("pokewatch: error: cannot serve on no-such-host.invalid:3000: ")
    assert len(err.strip().splitlines()) == 1


def test_make_run_serves_on_the_port_it_is_given() -> None:
    # It was always 3000: with that port taken, `make run` trained for a minute and then failed.
    root = Path(__file__).resolve().parents[1]
    dry = subprocess.run(
        ["make", "-n", "run", "PORT=3123"], cwd=root, capture_output=True, text=True, check=True
    )
    serve = [line for line in dry.stdout.splitlines() if "pokewatch serve" in line]
    assert len(serve) == 1 and serve[0].endswith("--port 3123"), dry.stdout


def test_a_failed_set_is_named_with_the_message_of_its_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # It said only "failed sets: zzz (KeyError)": the Map's Cause, which says why, was dropped.
    monkeypatch.delenv("POKEWATCH_SOURCE", raising=False)
    code, _, err = _run(capsys, "pipeline", "run", "--sets", "zzz", "--store", str(tmp_path))
    assert code == 1
    assert "failed sets: zzz (SourceError: unknown set 'zzz' in the sample market)" in err


def test_a_run_dated_before_every_price_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # It said "failed sets: none; empty sets: none": no set had a price by then, so none was run.
    prices = _market_csv(tmp_path / "prices.csv", weeks=4)
    argv = ["--source", "csv", "--input", str(prices), "--as-of", "2020-01-01"]
    code, _, err = _run(capsys, "pipeline", "run", *argv, "--store", str(tmp_path / "store"))
    assert code == 1
    assert "'csv' has no prices on or before 2020-01-01" in err


def test_a_failed_run_is_one_line_with_the_message_of_its_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # It ended `pipeline failed: SourceError: {"errorMessage": "...", "errorType": "SourceError"}`:
    # the Lambda's JSON error document, and no `pokewatch: error:` as every other failure has.
    prices = tmp_path / "prices.csv"
    prices.write_text("card_id;date;market_price\nbase1-4_holofoil;2024-01-07;300\n")
    argv = ["--source", "csv", "--input", str(prices), "--store", str(tmp_path / "store")]
    code, _, err = _run(capsys, "pipeline", "run", *argv)
    assert code == 1
    assert err.startswith(
        f"pokewatch: error: pipeline failed: SourceError: {prices}: missing required column(s)"
    )
    assert "errorMessage" not in err and len(err.splitlines()) == 1


def test_a_store_that_cannot_be_written_is_refused_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A read-only store ran the plan, failed every set's collection, then the failure notice
    # itself: `pipeline failed: OSError: ...notifications`. As root no directory mode refuses a
    # write, so the store's one way of writing a file fails here as a read-only disk does.
    def read_only(path: Path, data: bytes) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(LocalStore, "_replace", staticmethod(read_only))
    store = tmp_path / "store"
    code, out, err = _run(capsys, "pipeline", "run", "--cards", "20", "--store", str(store))
    assert (code, out) == (2, "")
    assert err == f"pokewatch: error: store {store}: cannot write there (Read-only file system)\n"


def test_the_csv_input_may_come_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # "--source csv needs --input PATH" refused the run though the settings name the file.
    prices = _market_csv(tmp_path / "prices.csv", weeks=4)
    monkeypatch.setenv("POKEWATCH_CSV_INPUT", str(prices))
    argv = ["--source", "csv", "--as-of", "2020-01-01", "--store", str(tmp_path / "store")]
    code, _, err = _run(capsys, "pipeline", "run", *argv)
    # The plan read the file: it has no price by 2020 (a cheap run that proves it was found).
    assert code == 1 and "'csv' has no prices on or before 2020-01-01" in err
    monkeypatch.delenv("POKEWATCH_CSV_INPUT")
    code, _, err = _run(capsys, "pipeline", "run", *argv)
    assert code == 2 and "--input" in err and "POKEWATCH_CSV_INPUT" in err


def test_cards_for_a_source_other_than_the_sample_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # It was ignored: --cards sizes the sample market, and a csv run read the whole file.
    prices = _market_csv(tmp_path / "prices.csv", weeks=4)
    argv = ["--source", "csv", "--input", str(prices), "--cards", "5"]
    code, _, err = _run(capsys, "pipeline", "run", *argv, "--store", str(tmp_path / "store"))
    assert code == 2
    assert "--cards" in err and "--source sample" in err
    assert not (tmp_path / "store").exists()


def test_the_command_runs_as_a_module_too() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pokewatch_local", "models", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and "rollback" in done.stdout


def test_backtest_leaves_out_a_typo_price_and_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    prices = _market_csv(tmp_path / "prices.csv", weeks=40)
    rows = prices.read_text().splitlines()
    # A card's price in the backtest's window typed as 99,999 (line 1,201: week 30's last card).
    card_id, date, *rest = rows[1200].split(",")
    typo = ",".join([card_id, date, "99999", *rest[1:]])
    without = tmp_path / "without.csv"
    without.write_text("\n".join(rows[:1200] + rows[1201:]) + "\n")
    prices.write_text("\n".join([*rows[:1200], typo, *rows[1201:]]) + "\n")

    # The command itself, for its stderr as a user sees it (the csv source's warning is logged).
    done = subprocess.run(
        [sys.executable, "-m", "pokewatch_local", "backtest", "--input", str(prices), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # Once, with its line: the backtest's own note said it again without the line.
    assert done.stderr.count("isolated price spike") == 1
    assert f"{card_id} on {date} priced 99999 between 2.6 and 2.63 at {prices}:1201" in done.stderr
    assert "not a fair summary" not in done.stderr
    # Left out as if the file did not have the row at all.
    assert _run(capsys, "backtest", "--input", str(without), "--json")[1] == done.stdout

    # Kept (the rule off), the one row is most of every MAPE, and the note says so.
    monkeypatch.setenv("POKEWATCH_PRICE_SPIKE_FACTOR", "1e9")
    code, out, err = _run(capsys, "backtest", "--input", str(prices), "--json")
    assert code == 0, err
    assert json.loads(out)["mape_naive"] > 1
    assert "isolated price spike" not in err
    assert "pairs' errors carry" in err and "a mean over the pairs is not a fair summary" in err
    assert f"its worst pairs: {card_id} priced 99999 on {date}" in err


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command of `parser` that runs something (`pipeline run`, `serve`, ...), by path."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        yield path, parser
    for group in groups:
        for name, command in group.choices.items():
            yield from _commands(command, (*path, name))


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {
        option
        for action in parser._actions
        if action.help != argparse.SUPPRESS
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }


def test_every_option_has_help_and_the_readme_table_names_the_same_options() -> None:
    # `backtest --input`, `serve --host` and `--port` had no help at all, and no help said that
    # the --store default comes from POKEWATCH_STORE.
    parser = _parser()
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    rows = {}
    for line in readme.splitlines():
        if line.startswith("| `pokewatch "):
            command = line.split("|")[1]
            rows[command.split()[1]] = command
    documented: dict[str, set[str]] = {name: set() for name in rows}
    for path, command in _commands(parser):
        name = " ".join(path)
        assert command.description, name
        for action in command._actions:
            assert action.help, f"{name} {action.dest}: no help"
            if action.dest == "store":
                assert "POKEWATCH_STORE" in action.help
            if not action.option_strings:  # a positional: its name as the table writes it
                assert f" {action.metavar}" in rows[path[0]], name
        documented[path[0]] |= _options(command)
    for name, row in rows.items():
        assert set(re.findall(r"--[a-z][a-z-]*", row)) == documented[name], row


def test_a_runs_metrics_and_report_say_what_the_backtest_notes_say(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # metrics.json and report.html said neither that a typo was left out nor that one pair
    # carried most of a MAPE: only `pokewatch backtest` on stderr did.
    prices = _market_csv(tmp_path / "prices.csv", weeks=40)
    rows = prices.read_text().splitlines()
    typo_id, typo_date, *typo_rest = rows[1200].split(",")  # week 30: left out, counted
    rows[1200] = ",".join([typo_id, typo_date, "99999", *typo_rest[1:]])
    # The last week's price of a card falls a thousandfold: a latest price is never a spike, and
    # the one pair whose actual it is carries most of every MAPE.
    crash_id, crash_date, crash_price, *crash_rest = rows[-1].split(",")
    rows[-1] = ",".join([crash_id, crash_date, f"{float(crash_price) / 1000:g}", *crash_rest])
    prices.write_text("\n".join(rows) + "\n")
    store = tmp_path / "store"

    argv = ["--source", "csv", "--input", str(prices), "--store", str(store), "--no-wait"]
    code, _, err = _run(capsys, "pipeline", "run", *argv)

    # The crash fails the gate; the rejected model's files stay for the collector to read.
    assert code == 1 and "QualityGateFailed" in err, err
    (version,) = (p.name for p in (store / "models").iterdir() if p.is_dir())
    metrics = json.loads((store / "models" / version / "metrics.json").read_text())
    assert metrics["data"]["price_spikes"] == 1
    spikes, dominated = metrics["notes"]
    assert spikes.startswith("1 isolated price spike (a price ×20 or more away")
    assert "a mean over the pairs is not a fair summary" in dominated and crash_id in dominated
    report = (store / "models" / version / "report.html").read_text()
    assert "Read these numbers with this in mind" in report
    assert html.escape(spikes) in report and html.escape(dominated) in report


def _interrupt_when(
    monkeypatch: pytest.MonkeyPatch, method: str, key: Callable[[str], bool], after: bool = False
) -> list[str]:
    """Ctrl-C in `LocalStore.<method>` on the first key that `key` accepts (`after`: once that
    call has done its work); the list it returns receives that key."""
    original = getattr(LocalStore, method)
    interrupted_at: list[str] = []

    def interrupted(self: LocalStore, name: str, *args: Any, **kwargs: Any) -> Any:
        if interrupted_at or not key(name):
            return original(self, name, *args, **kwargs)
        interrupted_at.append(name)
        if after:
            original(self, name, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(LocalStore, method, interrupted)
    return interrupted_at


def _last_line(err: str) -> str:
    """The command's own line: a Powertools logger that an earlier test made keeps that test's
    closed stream, and its "Logging error" lands on this test's stderr (never on a user's)."""
    assert err.count("pokewatch: ") == 1 and err.endswith("\n"), err
    return err.splitlines()[-1] + "\n"


def _run_folders(store: Path) -> list[str]:
    """The run folders of a store: its feature tables' and its models'."""
    found = [*store.glob("features/dt=*/*"), *store.glob("models/*")]
    return sorted(p.relative_to(store).as_posix() for p in found if p.is_dir())


def _run_day(run_id: str) -> dt.date:
    """The day a run without --as-of is dated (the plan's UTC date, which its id starts with):
    the clock read after the run may be past midnight already."""
    return dt.datetime.strptime(run_id[:8], "%Y%m%d").date()


def test_ctrl_c_during_a_run_says_so_and_removes_the_runs_partial_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Exit 130 without a word, and the run's feature tables and half-written model stayed.
    at = _interrupt_when(monkeypatch, "put_bytes", lambda key: key.endswith("/model.skops"))
    store = tmp_path / "store"

    code, _, err = _run(capsys, "pipeline", "run", "--cards", "20", "--store", str(store))

    assert code == 130
    run_id = at[0].split("/")[1]  # models/<run_id>/model.skops
    day = _run_day(run_id)
    assert _last_line(err) == (
        "pokewatch: interrupted during Train: nothing in service changed; removed the run's "
        f"partial files (features/dt={day}/{run_id}/, models/{run_id}/); run the same command "
        "again to finish\n"
    )
    # Only the run's own folders: the collected prices stay, for the next run to reuse.
    assert _run_folders(store) == [] and any(store.glob("raw/**/*.parquet"))
    assert not [p for p in store.glob("features/**/*") if p.is_file()]


def test_ctrl_c_after_the_promotion_says_the_model_is_in_service_and_keeps_its_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupt_when(monkeypatch, "put_if_unchanged", lambda key: key == "models/current.json", True)
    store = tmp_path / "store"

    code, _, err = _run(capsys, "pipeline", "run", "--cards", "20", "--store", str(store))

    assert code == 130
    (version,) = [p.name for p in (store / "models").iterdir() if p.is_dir()]
    assert _last_line(err) == (
        f"pokewatch: interrupted during Promote, after model {version} was put in service (its "
        "notice was not written)\n"
    )
    day = _run_day(version)
    assert _run_folders(store) == [f"features/dt={day}/{version}", f"models/{version}"]


def test_ctrl_c_between_the_promotions_two_writes_keeps_the_logged_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The log named the model, the pointer did not yet, and its files were removed: a repair of
    # a damaged pointer (back to the log's last record) would then name a model with no files.
    _interrupt_when(monkeypatch, "put_if_unchanged", lambda key: key == "models/current.json")
    store = tmp_path / "store"

    code, _, err = _run(capsys, "pipeline", "run", "--cards", "20", "--store", str(store))

    assert code == 130
    (version,) = [p.name for p in (store / "models").iterdir() if p.is_dir()]
    assert not (store / "models/current.json").exists()
    assert _run_folders(store) == [f"models/{version}"]
    assert _last_line(err) == (
        "pokewatch: interrupted during Promote: nothing in service changed; removed the run's "
        f"partial files (features/dt={_run_day(version)}/{version}/); run the same command "
        "again to finish\n"
    )
    assert _run(capsys, "models", "promote", version, "--store", str(store))[0] == 0


def test_a_second_ctrl_c_while_the_first_is_settled_still_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The second interrupt, in the removal of the run's partial files, exited 130 without a word.
    _interrupt_when(monkeypatch, "put_bytes", lambda key: key.endswith("/model.skops"))
    _interrupt_when(monkeypatch, "delete_folder", lambda prefix: True)

    code, _, err = _run(
        capsys, "pipeline", "run", "--cards", "20", "--store", str(tmp_path / "store")
    )

    assert code == 130
    assert _last_line(err) == "pokewatch: interrupted\n"


def test_ctrl_c_before_the_plan_made_a_run_removes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupt_when(monkeypatch, "list_keys", lambda prefix: prefix.startswith("raw/"))
    store = tmp_path / "store"

    code, _, err = _run(capsys, "pipeline", "run", "--cards", "20", "--store", str(store))

    assert code == 130
    assert _last_line(err) == (
        "pokewatch: interrupted during Plan: nothing in service changed; run the same command "
        "again to finish\n"
    )
