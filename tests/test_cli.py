"""The `pokewatch` command's error handling: one clear line naming the file or option."""

from __future__ import annotations

from pathlib import Path

import pytest

from pokewatch_local.cli import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_invoke_with_malformed_event_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event = tmp_path / "bad.json"
    event.write_text('{\n  "source": "sample",\n  oops\n}\n')
    code, _, err = _run(capsys, "invoke", "plan", "--event", str(event), "--store", str(tmp_path))
    assert code == 2
    assert f"{event}:3:" in err


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


def test_backtest_reports_a_bad_file_with_its_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "prices.csv"
    bad.write_text("card_id,date,market_price\nbase1-4_holofoil,not-a-date,3.0\n,2024-01-01,-2\n")
    code, _, err = _run(capsys, "backtest", "--input", str(bad))
    assert code == 2
    assert f"{bad}:2" in err and f"{bad}:3" in err


def test_rejects_bad_option_values(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["pipeline", "run", "--as-of", "yesterday"])
    assert exit_info.value.code == 2
    assert "not a date" in capsys.readouterr().err


def test_models_commands_on_an_empty_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(capsys, "models", "list", "--store", str(tmp_path))[0] == 0
    code, _, err = _run(capsys, "models", "rollback", "--store", str(tmp_path))
    assert code == 2 and "no earlier model" in err
    code, _, err = _run(capsys, "models", "promote", "v0", "--store", str(tmp_path))
    assert code == 2 and "no serving file" in err
