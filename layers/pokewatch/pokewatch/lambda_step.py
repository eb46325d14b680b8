"""One wrapper for every pipeline Lambda: logging, tracing, input validation, store and settings,
and the invocation's time limit (`pokewatch.invocation`).

A step is a function `(request, settings, store) -> answer` over pydantic models; the wrapper
turns it into a Lambda handler, so `functions/<step>/app.py` is one line of wiring.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from pokewatch.invocation import time_limit
from pokewatch.observability import make_tracer
from pokewatch.settings import Settings, get_settings
from pokewatch.store import ArtifactStore, open_store

LambdaHandler = Callable[[dict[str, Any], LambdaContext], Any]


def step_handler[RequestT: BaseModel](
    name: str,
    request_model: type[RequestT],
    step: Callable[[RequestT, Settings, ArtifactStore], BaseModel],
) -> LambdaHandler:
    """The Lambda handler of pipeline step `name`."""
    logger = Logger(service=f"pokewatch-{name}")
    tracer = make_tracer(f"pokewatch-{name}")

    @logger.inject_lambda_context(log_event=False)
    @tracer.capture_lambda_handler(capture_response=False)
    def handler(event: dict[str, Any], context: LambdaContext) -> Any:
        request = request_model.model_validate(event)
        settings = get_settings()
        with time_limit(context.get_remaining_time_in_millis() / 1000):
            answer = step(request, settings, open_store(settings.store))
        logger.info(f"{name} done", extra={"answer": answer.model_dump(mode="json")})
        return answer.model_dump(mode="json")

    return handler
