"""The small JSON documents that flow between the pipeline's states (URIs and counts, never data).

Each Lambda of the pipeline validates its input with one of these models and answers with another,
so a malformed event fails at the boundary with a message naming the field. The promote step
answers a `pokewatch.promotion.Promotion`, the document the registry and the API read too.
"""

from __future__ import annotations

import datetime as dt
import json
import textwrap

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from pokewatch.card_ids import SetId
from pokewatch.price_limits import plausible_day
from pokewatch.settings import MAX_BACKFILL_DAYS, MAX_SAMPLE_CARDS


class StepModel(BaseModel):
    """Base of every step document: unknown fields are tolerated (Step Functions adds some)."""

    model_config = ConfigDict(extra="ignore")


class RunRequest(StepModel):
    """The execution input: what the schedule or `pokewatch pipeline run` asks for."""

    source: str | None = None
    as_of: dt.date | None = None
    sets: list[SetId] | None = None
    input: str | None = Field(default=None, description="CSV path or URI for the csv source")
    cards: int | None = Field(
        default=None, ge=1, le=MAX_SAMPLE_CARDS, description="sample market size"
    )
    history_days: int | None = Field(
        default=None, ge=1, le=MAX_BACKFILL_DAYS, description="backfill on a first run"
    )

    @field_validator("as_of")
    @classmethod
    def _plausible_day(cls, value: dt.date | None) -> dt.date | None:
        # A day outside the prices' range failed later, in a step, as a date overflow.
        return value if value is None else not_after_today(plausible_day(value))


def not_after_today(day: dt.date) -> dt.date:
    """`day`, or a ValueError when it has not come yet anywhere on Earth (a day after today's
    UTC date, which is already today east of UTC). A run dated in the future collected days
    that have not happened (the sample market simulated them) and promoted a model whose data
    was "as of" that day."""
    latest = utc_today() + dt.timedelta(days=1)
    if day > latest:
        raise ValueError(f"must not be after {latest} (tomorrow, UTC): that day has not come yet")
    return day


def utc_today() -> dt.date:
    """Today's date in UTC: the day the pipeline's steps call today."""
    return dt.datetime.now(dt.UTC).date()


class RunConfig(StepModel):
    """The resolved run: every later step reads its parameters from here."""

    run_id: str
    source: str
    as_of: dt.date
    input: str | None = None
    cards: int | None = None
    history_days: int | None = None


class CollectItem(StepModel):
    """One Map iteration: collect one set for the days `start..end`."""

    run: RunConfig
    set_id: SetId
    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _days_in_order(self) -> CollectItem:
        # Named as the event's fault here; a source met it as its own ValueError.
        if self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        return self


class CollectResult(StepModel):
    """What one Map iteration wrote, and the days it asked for (None: from before they were
    recorded)."""

    set_id: str
    key: str
    rows: int
    cards: int
    start: dt.date | None = None
    end: dt.date | None = None


class Plan(StepModel):
    """The plan step's answer: the run and the Map's items."""

    run: RunConfig
    items: list[CollectItem]


class CollectFailure(StepModel):
    """A Map iteration that failed after its retries (caught so the other sets go on).

    Read from the Map's `Error` / `Cause` (ASL's names) and, in every later step, from its own
    `error` / `cause` (how the Dataset carries it on), so the cause reaches the notification."""

    set_id: str
    error: str = Field(validation_alias=AliasChoices("Error", "error"), default="Unknown")
    cause: str = Field(validation_alias=AliasChoices("Cause", "cause"), default="")

    @property
    def summary(self) -> str:
        """`sv1 (KeyError: unknown set 'sv1' ...)`: the set, its error and why, in one short
        line."""
        why = textwrap.shorten(cause_message(self.cause), width=200, placeholder=" …")
        return f"{self.set_id} ({self.error}: {why})" if why else f"{self.set_id} ({self.error})"


def cause_message(cause: str) -> str:
    """The message of an ASL error's Cause: a Lambda's Cause is its JSON error document (the
    message next to its type and stack trace), the Cause of a States error plain text."""
    try:
        return str(json.loads(cause)["errorMessage"])
    except (ValueError, TypeError, KeyError):
        return cause


class PreprocessInput(StepModel):
    """The Map's results next to the run."""

    run: RunConfig
    collected: list[dict]


class Dataset(StepModel):
    """The preprocess step's answer: where the history and the training table are."""

    run: RunConfig
    history_key: str
    features_key: str
    rows: int
    cards: int
    data_as_of: dt.date
    collected_sets: list[str]
    failed_sets: list[CollectFailure] = Field(default_factory=list)
    #: Isolated price spikes of the history that the features leave out (`price_spikes`).
    price_spikes: int = 0


class TrainedModel(StepModel):
    """The train step's answer: the candidate model version and its files."""

    run: RunConfig
    version: str
    dataset: Dataset


class GateResult(StepModel):
    """The validate step's verdict on a candidate, as the Choice state reads it."""

    passed: bool
    reasons: list[str]
    summary: str


class ValidatedModel(TrainedModel):
    """The validate step's answer."""

    gate: GateResult
