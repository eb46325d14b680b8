"""The settings object: read from `POKEWATCH_*` variables, overridden by arguments."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from pokewatch.settings import Settings


@pytest.fixture(autouse=True)
def no_pokewatch_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Only the variables a test sets."""
    for name in [n for n in os.environ if n.lower().startswith("pokewatch_")]:
        monkeypatch.delenv(name)
    return monkeypatch


def test_defaults_work_on_a_laptop() -> None:
    settings = Settings()
    assert (settings.store, settings.source, settings.sets) == (".pokewatch/store", "sample", [])


def test_variables_are_read_by_prefix_in_any_case_and_converted(
    no_pokewatch_environment: pytest.MonkeyPatch,
) -> None:
    env = no_pokewatch_environment
    env.setenv("POKEWATCH_STORE", "s3://bucket/prefix")
    env.setenv("pokewatch_model_ttl_seconds", "5")
    env.setenv("PokeWatch_Sets", "sv1, sv2,,")
    env.setenv("POKEWATCH_NOT_A_SETTING", "ignored")
    env.setenv("STORE", "not ours")
    settings = Settings()
    assert settings.store == "s3://bucket/prefix"
    assert settings.model_ttl_seconds == 5.0
    assert settings.sets == ["sv1", "sv2"]


def test_arguments_override_the_environment(no_pokewatch_environment: pytest.MonkeyPatch) -> None:
    no_pokewatch_environment.setenv("POKEWATCH_SAMPLE_CARDS", "12")
    no_pokewatch_environment.setenv("POKEWATCH_STORE", "from-env")
    settings = Settings(store="from-argument")
    assert (settings.store, settings.sample_cards) == ("from-argument", 12)


def test_an_invalid_variable_names_its_field(no_pokewatch_environment: pytest.MonkeyPatch) -> None:
    no_pokewatch_environment.setenv("POKEWATCH_HORIZON_DAYS", "0")
    with pytest.raises(ValidationError, match="horizon_days"):
        Settings()


@pytest.mark.parametrize(
    ("variable", "value"),
    [("POKEWATCH_SAMPLE_CARDS", "1000000"), ("POKEWATCH_SAMPLE_HISTORY_DAYS", "40000")],
)
def test_a_sample_market_beyond_the_run_limits_is_refused(
    no_pokewatch_environment: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    # A mistyped size built the market's catalogue in every step until memory or time ran out.
    no_pokewatch_environment.setenv(variable, value)
    with pytest.raises(ValidationError, match=variable.removeprefix("POKEWATCH_").lower()):
        Settings()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("POKEWATCH_BUY_THRESHOLD", "0.10"),  # 10% below written without its sign: all BUY
        ("POKEWATCH_BUY_THRESHOLD", "-10"),  # a percentage: a price never falls 1000%, no BUY
        ("POKEWATCH_SELL_THRESHOLD", "-0.05"),  # a card at its expected price was a SELL
        ("POKEWATCH_SELL_THRESHOLD", "0"),
        ("POKEWATCH_SELL_THRESHOLD", "15"),  # a percentage: 1500% above, almost never a SELL
    ],
)
def test_signal_thresholds_are_a_fall_and_a_rise(
    no_pokewatch_environment: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    # Out of these bounds the rule answered BUY for every card or never, without a word.
    no_pokewatch_environment.setenv(variable, value)
    with pytest.raises(ValidationError, match=variable.lower().removeprefix("pokewatch_")):
        Settings()
