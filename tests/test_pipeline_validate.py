"""The validate step judges only the model its own run trained, and its verdict stands."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from api_fixtures import put_model
from test_quality_gate import SETTINGS, metrics

from pokewatch import keys, registry
from pokewatch.pipeline import validate
from pokewatch.pipeline.promote import NotApproved, promote_model
from pokewatch.pipeline.validate import NotThisRunsModel, validate_model
from pokewatch.steps import Dataset, RunConfig, TrainedModel
from pokewatch.store import LocalStore, S3Store

DAY = dt.date(2024, 7, 31)


def _trained(store: LocalStore | S3Store, run_id: str, **backtest: object) -> TrainedModel:
    """What the train step of run `run_id` writes and answers: its model `run_id`."""
    run = RunConfig(run_id=run_id, source="csv", as_of=DAY)
    dataset = Dataset(
        run=run,
        history_key="history/h.parquet",
        features_key="features/f.parquet",
        rows=100,
        cards=10,
        data_as_of=DAY,
        collected_sets=["sv1"],
    )
    put_model(store, run_id)
    written = {
        "version": run_id,
        "backtest": metrics(**backtest).model_dump(mode="json"),
        "card_coverage": 0.95,
        "run": run.model_dump(mode="json"),
    }
    store.put_bytes(keys.model_artifact(run_id, "metrics.json"), json.dumps(written).encode())
    return TrainedModel(run=run, version=run_id, dataset=dataset)


def _metrics_file(store: LocalStore | S3Store, version: str) -> dict:
    return json.loads(store.get_bytes(keys.model_artifact(version, "metrics.json")))


@pytest.mark.parametrize("named", ["in service", "older"])
def test_an_event_naming_another_runs_model_leaves_its_verdict(
    any_store: LocalStore | S3Store, named: str
) -> None:
    # Any version named by the event had its metrics.json rewritten with a new verdict: the
    # model in service's, judged against itself, or an older one's, made to pass a gate it failed.
    older = _trained(any_store, "r1", mape_model=0.5)
    assert not validate_model(older, SETTINGS, any_store).gate.passed
    in_service = _trained(any_store, "r2")
    promote_model(validate_model(in_service, SETTINGS, any_store), SETTINGS, any_store)
    target = {"in service": in_service, "older": older}[named]
    before = any_store.get_bytes(keys.model_artifact(target.version, "metrics.json"))
    this_run = _trained(any_store, "r3")
    event = this_run.model_copy(update={"version": target.version})
    with pytest.raises(NotThisRunsModel, match=rf"models/{target.version}/metrics\.json .* \(r3\)"):
        validate_model(event, SETTINGS, any_store)
    assert any_store.get_bytes(keys.model_artifact(target.version, "metrics.json")) == before
    assert "gate" not in _metrics_file(any_store, "r3")
    # A version no run trained is refused as well.
    missing = this_run.model_copy(update={"version": "r9"})
    with pytest.raises(NotThisRunsModel, match=r"models/r9/metrics\.json not found"):
        validate_model(missing, SETTINGS, any_store)


def test_a_rerun_of_the_step_answers_the_verdict_written_first(
    any_store: LocalStore | S3Store,
) -> None:
    # A re-run (a retry, a redriven execution) judged again against the model in service then,
    # which may have changed meanwhile: it replaced the verdict the execution had acted on.
    candidate = _trained(any_store, "r1", mape_model=0.06)
    first = validate_model(candidate, SETTINGS, any_store)
    written = _metrics_file(any_store, "r1")
    assert first.gate.passed and written["gate"]["passed"]
    better = _trained(any_store, "r0", mape_model=0.01)  # a far better model now in service
    registry.promote(any_store, better.version)
    again = validate_model(candidate, SETTINGS, any_store)
    assert again == first
    assert _metrics_file(any_store, "r1") == written


def test_two_validations_at_once_write_one_verdict(
    local_store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The second writer replaced the first's verdict with its own, judged by other settings or
    # against another champion: the answer one execution acted on was no longer the one on file.
    candidate = _trained(local_store, "r1")
    judge = validate.evaluate_gate
    strict = SETTINGS.model_copy(update={"max_mape": 0.01})

    def meanwhile(*args: object, **kwargs: object) -> object:
        monkeypatch.setattr(validate, "evaluate_gate", judge)
        validate_model(candidate, strict, local_store)  # the other one writes first
        return judge(*args, **kwargs)

    monkeypatch.setattr(validate, "evaluate_gate", meanwhile)
    answer = validate_model(candidate, SETTINGS, local_store)
    assert not answer.gate.passed
    assert answer.gate.reasons == [r for r in answer.gate.reasons if r.startswith("mape:")]
    assert _metrics_file(local_store, "r1")["gate"]["passed"] is False


def test_a_damaged_metrics_file_is_named(local_store: LocalStore) -> None:
    candidate = _trained(local_store, "r1")
    local_store.put_bytes(keys.model_artifact("r1", "metrics.json"), b'{"version": "r1"}')
    with pytest.raises(ValueError, match=r"models/r1/metrics\.json is not a model's metrics"):
        validate_model(candidate, SETTINGS, local_store)


def test_a_damaged_champion_metrics_file_is_named(local_store: LocalStore) -> None:
    # Judged without the champion's backtest, the challenger would skip the champion check; the
    # step failed with a bare KeyError.
    champion = _trained(local_store, "r1")
    promote_model(validate_model(champion, SETTINGS, local_store), SETTINGS, local_store)
    local_store.put_bytes(keys.model_artifact("r1", "metrics.json"), b'{"version": "r1"}')
    with pytest.raises(ValueError, match=r"models/r1/metrics\.json is not a model's metrics"):
        validate_model(_trained(local_store, "r2"), SETTINGS, local_store)


def test_promote_refuses_an_event_naming_another_runs_model(local_store: LocalStore) -> None:
    # An older model that once passed its gate, named by a hand-made event of a later run, was
    # put back in service by the promote step.
    older = validate_model(_trained(local_store, "r1"), SETTINGS, local_store)
    promote_model(older, SETTINGS, local_store)
    promote_model(
        validate_model(_trained(local_store, "r2"), SETTINGS, local_store), SETTINGS, local_store
    )
    later_run = older.run.model_copy(update={"run_id": "r3"})
    with pytest.raises(NotApproved, match="trained by run r1, not by this run \\(r3\\)"):
        promote_model(older.model_copy(update={"run": later_run}), SETTINGS, local_store)
    assert registry.current(local_store).version == "r2"
