"""Which model is in service: the content of `models/current.json`, one entry of the registry's
log, and the promote step's answer. Kept out of `steps` so that the API, which reads only this
document, does not import the step documents."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict


class Promotion(BaseModel):
    """One model put into service."""

    model_config = ConfigDict(extra="ignore")

    version: str
    promoted_at: dt.datetime
    previous_version: str | None = None
    data_as_of: dt.date | None = None
    #: Set on a rollback: `promoted_at` of the promotion it put back, so that the next rollback
    #: goes on from where that promotion stood in the log, not from the newest one of its version.
    restores: dt.datetime | None = None

    @property
    def original_promoted_at(self) -> dt.datetime:
        """When this model was put in service by the promotion this record is, or restores."""
        return self.restores or self.promoted_at
