"""The prediction API: health, card listing and detail, predict and batch predict (SPEC §7).

A thin Powertools handler over `pokewatch.prediction`: requests and answers are the pydantic models
of `pokewatch.api_schemas`, from which `/openapi.json` and `/swagger` are generated. Every error is
an `ErrorBody` with the status that names its cause; bad input is never a 5xx.
"""

from __future__ import annotations

import gc
import os
import threading

# A Lambda cold start creates ~120,000 objects that live as long as the environment (modules,
# classes, validation schemas); the cyclic collector's passes over them cost ~40 ms of it (~10% of
# the first answer). Collection is paused until the model is loaded and this module initialised,
# and resumes with those objects frozen out of it (`_resume_gc`). Only in Lambda: a process that
# loads this module many times (the tests) must not freeze its own garbage.
_PAUSE_GC = os.environ.get("AWS_EXECUTION_ENV", "").startswith("AWS_Lambda_")
if _PAUSE_GC:
    gc.disable()
#: Set on the last line of this module.
_initialised = threading.Event()

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

from pokewatch.model_loader import ModelLoader, ModelUnavailable
from pokewatch.settings import get_settings
from pokewatch.store import open_store


def _resume_gc() -> None:
    """Resume the collection paused above once this module is initialised, leaving out what the
    cold start created: it stays as long as the environment, and walking it would cost every
    collection. Runs in the preload thread after the model is loaded."""
    _initialised.wait()
    gc.freeze()
    gc.enable()


# The model is fetched before the imports below, so that its network reads overlap with them: the
# first request waits for the reads only if they take longer. The S3 client is made here, in this
# thread (see `ModelLoader.preload`), and the logs are set up first, for the loader's own lines.
settings = get_settings()
logger = Logger(service="pokewatch-api")
copy_config_to_registered_loggers(source_logger=logger, include={"pokewatch"})
loader = ModelLoader(lambda: open_store(settings.store), settings.model_ttl_seconds)
loader.preload(then=_resume_gc if _PAUSE_GC else None)

import time
from typing import Annotated, Any, Literal

from annotated_types import Ge, Le
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from pokewatch import api_docs, prediction
from pokewatch.api_docs import KEYED, error_responses, route_responses
from pokewatch.api_errors import (
    NOT_JSON,
    card_id_problems,
    checked_content_type,
    error_response,
    invalid_request,
    query_problems,
    request_problems,
    undecodable_body,
    with_decoded_path,
)
from pokewatch.api_schemas import (
    DIGITS_ONLY,
    BatchRequest,
    BatchResponse,
    BodyTooLarge,
    CardDetail,
    CardPage,
    ErrorBody,
    ErrorDetail,
    Health,
    NotAnObject,
    Prediction,
    PredictRequest,
    parse_json_body,
)
from pokewatch.card_ids import CardId
from pokewatch.observability import make_tracer
from pokewatch.serving import ServingTable

tracer = make_tracer("pokewatch-api")
metrics = Metrics(namespace="PokeWatch", service="pokewatch-api")
app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=parse_json_body)

#: Lambda runs one invocation at a time per environment, and Powertools keeps the current
#: request, log keys and metrics in globals; a threaded host (`pokewatch serve`) must do the same.
_invocation = threading.Lock()


def _table() -> ServingTable:
    return loader.state().table


def _query_problems() -> list[dict[str, Any]]:
    """The query parameters of this request that its route does not take or that are repeated."""
    accepted = [param.alias for param in app.context["_route"].dependant.query_params]
    return query_problems(app.current_event.raw_event, accepted)


def _known_query(resolver: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response:
    # Per route, not `app.use`: global middlewares also run before the not-found handler, where
    # any parameter would be unknown and `/nope?x=1` a 422 rather than 404 no_route.
    problems = _query_problems()
    return invalid_request(request_problems(problems)) if problems else next_middleware(resolver)


#: The middlewares of every route.
CHECKED = [_known_query]


# --- errors --------------------------------------------------------------------------------------
@app.exception_handler(RequestValidationError)
def _invalid_request(exc: RequestValidationError) -> Response:
    # Powertools validates before a route's middlewares run: the query's problems are named here
    # too, with the others, in place of its own errors for a repeated parameter.
    query = _query_problems()
    named = {error["loc"] for error in query}
    errors = [error for error in exc.errors() if tuple(error["loc"]) not in named]
    return invalid_request(request_problems([*query, *errors]))


@app.exception_handler(NotAnObject)
def _not_an_object(exc: NotAnObject) -> Response:
    return invalid_request([ErrorDetail(field="body", problem=str(exc))])


@app.exception_handler(RequestUnsupportedContentType)
def _unsupported_content_type(_: Exception) -> Response:
    return error_response(415, "unsupported_media_type", NOT_JSON)


@app.exception_handler(BodyTooLarge)
def _too_large(exc: BodyTooLarge) -> Response:
    return error_response(413, "body_too_large", str(exc))


@app.exception_handler(UnicodeDecodeError)
def _not_utf8(_: UnicodeDecodeError) -> Response:
    # Powertools decodes a base64 (binary) body as UTF-8 before parsing it.
    return undecodable_body(app.current_event.raw_event)


@app.exception_handler(ModelUnavailable)
def _unavailable(exc: ModelUnavailable) -> Response:
    retry = {"Retry-After": str(loader.retry_after_seconds)}
    return error_response(503, "model_unavailable", f"no model in service: {exc}", headers=retry)


@app.exception_handler(prediction.NotFound)
def _not_found(exc: prediction.NotFound) -> Response:
    return error_response(404, "not_found", str(exc))


@app.exception_handler(prediction.BadCursor)
def _bad_cursor(exc: prediction.BadCursor) -> Response:
    details = [ErrorDetail(field="query.cursor", problem=str(exc))]
    return error_response(400, "invalid_cursor", str(exc), details)


@app.exception_handler(Exception)
def _internal_error(exc: Exception) -> Response:
    logger.exception("unhandled error")
    body = ErrorBody(
        error="internal_error",
        message=f"internal error; request id {app.lambda_context.aws_request_id}",
    )
    return Response(500, "application/json", body.model_dump(exclude_none=True))


@app.not_found
def _no_route(_: Exception) -> Response:
    event = app.current_event
    # API Gateway routed the request to /cards/{card_id}, but Powertools' route pattern takes
    # only word characters and some of URL syntax: a card id with another character (`%FF`,
    # `"`) found no route, where every other invalid id is a 422 naming it.
    card_id = (event.path_parameters or {}).get("card_id")
    problems = card_id_problems(card_id) if card_id is not None else []
    if problems:
        return invalid_request(problems)
    return error_response(404, "no_route", f"no route {event.http_method} {event.path}")


# --- routes --------------------------------------------------------------------------------------
@app.get(
    "/health",
    summary="Model in service",
    operation_id="health",
    tags=["service"],
    middlewares=CHECKED,
    responses={
        200: {
            "description": "a model is in service",
            "content": {"application/json": {"model": Health}},
        },
        503: {
            "description": "no model is in service",
            "content": {"application/json": {"model": Health}},
        },
        **error_responses(422),
    },
)
def health() -> Response[Health]:
    """Whether a model is in service, which one, and how fresh its data is."""
    try:
        state = loader.state()
    except ModelUnavailable as exc:
        return Response(503, "application/json", Health(status="unavailable", detail=str(exc)))
    facts = state.table.facts
    body = Health(
        status="degraded" if state.problem else "ok",
        model_version=facts.model_version,
        trained_at=facts.trained_at,
        data_as_of=facts.data_as_of,
        cards=state.table.card_count,
        detail=state.problem,
    )
    return Response(200, "application/json", body)


@app.get(
    "/cards",
    summary="List cards",
    operation_id="listCards",
    tags=["cards"],
    security=KEYED,
    middlewares=CHECKED,
    responses=route_responses("a page of cards", 400, 422, 503),
)
def list_cards(
    limit: Annotated[int, Ge(1), Le(500), DIGITS_ONLY, Query(description="cards per page")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous page")
    ] = None,
    set: Annotated[
        str | None,
        Query(max_length=100, description="set id or set name (spaces around it are ignored)"),
    ] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=100,
            description="part of the name or card id (spaces around it are ignored)",
        ),
    ] = None,
) -> CardPage:
    """Cards in service in card id order, filtered by set and by name, a page at a time."""
    return prediction.list_cards(_table(), limit=limit, cursor=cursor, set_id=set, query=q)


@app.get(
    "/cards/<card_id>",
    summary="One card",
    operation_id="getCard",
    tags=["cards"],
    security=KEYED,
    middlewares=CHECKED,
    responses=route_responses("the card", 404, 422, 503),
)
def card_detail(card_id: Annotated[CardId, Path()]) -> CardDetail:
    """One card with its recent price history and its latest prediction."""
    return prediction.card_detail(
        _table(), card_id, settings.buy_threshold, settings.sell_threshold
    )


@app.post(
    "/predict",
    summary="Predict one card",
    operation_id="predict",
    tags=["predictions"],
    security=KEYED,
    middlewares=CHECKED,
    responses=route_responses("the prediction", 400, 404, 413, 415, 422, 503),
)
def predict(request: PredictRequest) -> Prediction:
    """The fair price of one card (a median forecast), its 80% interval, its expected price (the
    mean forecast) and the BUY / HOLD / SELL signal of the market price or yours against the
    expected price, at its latest price or at the latest on or before `date`."""
    answer = prediction.predict(_table(), request, settings.buy_threshold, settings.sell_threshold)
    metrics.add_metric(name="CardsPredicted", unit=MetricUnit.Count, value=1)
    return answer


@app.post(
    "/predict/batch",
    summary="Predict up to 100 cards",
    operation_id="predictBatch",
    tags=["predictions"],
    security=KEYED,
    middlewares=CHECKED,
    responses=route_responses("one result per item", 400, 413, 415, 422, 503),
)
def predict_batch(request: BatchRequest) -> BatchResponse:
    """Up to 100 predictions in the order asked; an item that fails gets an error object with the
    status a single /predict would answer, the others are answered."""
    table = _table()
    results = [
        prediction.predict_item(table, index, item, settings.buy_threshold, settings.sell_threshold)
        for index, item in enumerate(request.items)
    ]
    answered = sum(isinstance(r, Prediction) for r in results)
    metrics.add_metric(name="CardsPredicted", unit=MetricUnit.Count, value=answered)
    return BatchResponse(results=results)


# --- documentation -------------------------------------------------------------------------------
def _server() -> str:
    # The routes' base as this request reached them (`/prod` through a stage URL): a document
    # naming the root would send its clients past the stage, to no API.
    return api_docs.stage_path(app.current_event) or "/"


@app.get("/openapi.json", include_in_schema=False, middlewares=CHECKED)
def openapi_spec() -> Response[str]:
    """The OpenAPI document of this API, for clients of the URL it was asked at."""
    return Response(200, "application/json", api_docs.openapi_document(app, _server()))


@app.get("/swagger", include_in_schema=False, middlewares=CHECKED)
def swagger(format: Annotated[Literal["json"] | None, Query()] = None) -> Response[str]:
    """The Swagger UI of this API; `?format=json` is the document it shows."""
    server = _server()
    if format == "json":
        return Response(200, "application/json", api_docs.swagger_document(app, server))
    return Response(200, "text/html", api_docs.swagger_page(app, server))


# --- entry point ---------------------------------------------------------------------------------
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def _handle(event: dict, context: LambdaContext) -> dict:
    started = time.perf_counter()
    refused, event = checked_content_type(with_decoded_path(event))
    response = refused or app.resolve(event, context)
    status = int(response["statusCode"])
    # Zeros too, so that the average of Http4xx / Http5xx is the error rate.
    metrics.add_metric("Latency", MetricUnit.Milliseconds, (time.perf_counter() - started) * 1e3)
    metrics.add_metric("Http4xx", MetricUnit.Count, int(400 <= status < 500))
    metrics.add_metric("Http5xx", MetricUnit.Count, int(status >= 500))
    return response


def lambda_handler(event: dict, context: LambdaContext) -> dict:
    """API Gateway (REST) proxy integration entry point."""
    with _invocation:
        try:
            return _handle(event, context)
        finally:
            # With POWERTOOLS_METRICS_DISABLED (local runs) Powertools keeps every metric and
            # prints them once 100 have piled up; nothing is left after a normal flush.
            metrics.clear_metrics()


_initialised.set()
