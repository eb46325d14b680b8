"""Every file in events/ works with `pokewatch invoke`: the pipeline steps in order against one
store, then every API event against the model they promoted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from market_fixtures import OPEN_GATE

from pokewatch_local.cli import main

STEP_ORDER = ["plan", "collect", "preprocess", "train", "validate", "promote"]
#: The status each API sample event is made to show.
API_STATUS = {"predict-invalid": 422}


def _invoke(function: str, event: Path, store: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["invoke", function, "--event", str(event), "--store", str(store)]) == 0
    return json.loads(capsys.readouterr().out)


def test_every_function_has_events(repo: Path) -> None:
    functions = {p.name for p in (repo / "functions").iterdir() if (p / "app.py").is_file()}
    with_events = {p.name for p in (repo / "events").iterdir() if list(p.glob("*.json"))}
    assert functions <= with_events


@pytest.mark.slow
def test_events_invoke_in_pipeline_order_then_the_api(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo)  # the csv event names ../shared/data relative to the project
    for name, value in OPEN_GATE.items():
        monkeypatch.setenv(name, value)
    store = tmp_path / "store"
    for step in STEP_ORDER:
        for event in sorted((repo / "events" / step).glob("*.json")):
            answer = _invoke(step, event, store, capsys)
            assert answer, f"{event.name} gave an empty answer"
    for event in sorted((repo / "events" / "api").glob("*.json")):
        answer = _invoke("api", event, store, capsys)
        assert answer["statusCode"] == API_STATUS.get(event.stem, 200), (event.name, answer)
