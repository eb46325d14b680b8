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

import functools
import time
from typing import TYPE_CHECKING, Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from pokewatch import prediction
from pokewatch.api_schemas import (
    BatchRequest,
    BatchResponse,
    BodyTooLarge,
    CardDetail,
    CardPage,
    ErrorBody,
    ErrorDetail,
    Health,
    ItemError,
    Prediction,
    PredictRequest,
    parse_json_body,
)
from pokewatch.card_ids import CardId
from pokewatch.observability import make_tracer
from pokewatch.serving import ServingTable
from pokewatch.validation import error_message, problems

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.types import (
        OpenAPIResponse,
        OpenAPIResponseContentModel,
        OpenAPIResponseContentSchema,
    )

tracer = make_tracer("pokewatch-api")
metrics = Metrics(namespace="PokeWatch", service="pokewatch-api")
app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=parse_json_body)

#: Lambda runs one invocation at a time per environment, and Powertools keeps the current
#: request, log keys and metrics in globals; a threaded host (`pokewatch serve`) must do the same.
_invocation = threading.Lock()
_KEYED: list[dict[str, list[str]]] = [{"apiKey": []}]
_NOT_JSON = "the request body must be JSON, sent with Content-Type: application/json"
_ERRORS = {
    400: "an invalid listing cursor, or a body that is not UTF-8",
    404: "no such card, or no price of it by that date",
    413: "the request body is too large",
    415: "the request body is not JSON (Content-Type: application/json)",
    422: "invalid input: `details` names each field and its problem",
    503: "no model is in service; `message` says why",
}


def _responses(answer: str, *errors: int) -> dict[int, OpenAPIResponse]:
    """The OpenAPI responses of a route: its answer (the return annotation) and its errors."""
    error_content: dict[str, OpenAPIResponseContentSchema | OpenAPIResponseContentModel] = {
        "application/json": {"model": ErrorBody}
    }
    return {
        200: {"description": answer},
        **{status: {"description": _ERRORS[status], "content": error_content} for status in errors},
    }


def _error(
    status: int,
    code: str,
    message: str,
    details: list[ErrorDetail] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    logger.info("request failed", extra={"status": status, "error": code, "detail": message})
    body = ErrorBody(error=code, message=message, details=details)
    return Response(status, "application/json", body.model_dump(exclude_none=True), headers)


def _table() -> ServingTable:
    return loader.state().table


# --- errors --------------------------------------------------------------------------------------
@app.exception_handler(RequestValidationError)
def _invalid_request(exc: RequestValidationError) -> Response:
    details = [ErrorDetail(field=_field_name(e), problem=_problem(e)) for e in exc.errors()]
    summary = "; ".join(f"{d.field}: {d.problem}" for d in details)
    return _error(422, "invalid_request", f"invalid request: {summary}", details)


def _field_name(error: dict[str, Any]) -> str:
    """`query.limit`, `market_price`, `items`, or `body` for the body as a whole."""
    location = [str(p) for p in error.get("loc", ())]
    if error.get("type") == "json_invalid" or location == ["body"]:
        return "body"
    name = ".".join(location[1:] if location[:1] == ["body"] else location)
    return name if len(name) <= 100 else f"{name[:100]}…"  # unknown keys can be any size


def _problem(error: dict[str, Any]) -> str:
    if error.get("type") == "json_invalid":
        return f"not valid JSON: {error.get('ctx', {}).get('error', 'malformed')}"
    return error_message(error)


@app.exception_handler(RequestUnsupportedContentType)
def _unsupported_content_type(_: Exception) -> Response:
    return _error(415, "unsupported_media_type", _NOT_JSON)


@app.exception_handler(BodyTooLarge)
def _too_large(exc: BodyTooLarge) -> Response:
    return _error(413, "body_too_large", str(exc))


@app.exception_handler(UnicodeDecodeError)
def _not_utf8(_: UnicodeDecodeError) -> Response:
    # Powertools decodes a base64 (binary) body as UTF-8 before parsing it.
    return _error(400, "invalid_encoding", "the request body is not UTF-8 text")


@app.exception_handler(ModelUnavailable)
def _unavailable(exc: ModelUnavailable) -> Response:
    retry = {"Retry-After": str(loader.retry_after_seconds)}
    return _error(503, "model_unavailable", f"no model in service: {exc}", headers=retry)


@app.exception_handler(prediction.NotFound)
def _not_found(exc: prediction.NotFound) -> Response:
    return _error(404, "not_found", str(exc))


@app.exception_handler(prediction.BadCursor)
def _bad_cursor(exc: prediction.BadCursor) -> Response:
    return _error(400, "invalid_cursor", str(exc))


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
    return _error(404, "no_route", f"no route {event.http_method} {event.path}")


# --- routes --------------------------------------------------------------------------------------
@app.get(
    "/health",
    summary="Model in service",
    operation_id="health",
    tags=["service"],
    responses={
        200: {
            "description": "a model is in service",
            "content": {"application/json": {"model": Health}},
        },
        503: {
            "description": "no model is in service",
            "content": {"application/json": {"model": Health}},
        },
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
    security=_KEYED,
    responses=_responses("a page of cards", 400, 422, 503),
)
def list_cards(
    limit: Annotated[int, Query(ge=1, le=500, description="cards per page")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous page")
    ] = None,
    set: Annotated[str | None, Query(max_length=100, description="set id or set name")] = None,
    q: Annotated[
        str | None, Query(max_length=100, description="part of the name or card id")
    ] = None,
) -> CardPage:
    """Cards in service in card id order, filtered by set and by name, a page at a time."""
    return prediction.list_cards(_table(), limit=limit, cursor=cursor, set_id=set, query=q)


@app.get(
    "/cards/<card_id>",
    summary="One card",
    operation_id="getCard",
    tags=["cards"],
    security=_KEYED,
    responses=_responses("the card", 404, 422, 503),
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
    security=_KEYED,
    responses=_responses("the prediction", 404, 413, 415, 422, 503),
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
    security=_KEYED,
    responses=_responses("one result per item", 413, 415, 422, 503),
)
def predict_batch(request: BatchRequest) -> BatchResponse:
    """Up to 100 predictions in the order asked; an item that fails gets an error object with the
    status a single /predict would answer, the others are answered."""
    table = _table()
    results = [_batch_item(table, index, item) for index, item in enumerate(request.items)]
    answered = sum(isinstance(r, Prediction) for r in results)
    metrics.add_metric(name="CardsPredicted", unit=MetricUnit.Count, value=answered)
    return BatchResponse(results=results)


def _batch_item(table: ServingTable, index: int, item: Any) -> Prediction | ItemError:
    card_id = item.get("card_id") if isinstance(item, dict) else None
    card_id = card_id if isinstance(card_id, str) and len(card_id) <= 128 else None
    try:
        request = PredictRequest.model_validate(item)
        return prediction.predict(table, request, settings.buy_threshold, settings.sell_threshold)
    except ValidationError as exc:
        return ItemError(
            index=index,
            status=422,
            error="invalid_request",
            message=problems(exc, whole="item"),
            card_id=card_id,
        )
    except prediction.NotFound as exc:
        return ItemError(
            index=index, status=404, error="not_found", message=str(exc), card_id=card_id
        )


# --- documentation -------------------------------------------------------------------------------
# Built when first asked for, not at import (`configure_openapi` / `enable_swagger` would import
# Powertools' OpenAPI models there: a third of the cold start, paid by every request).
@app.get("/openapi.json", include_in_schema=False)
def openapi_spec() -> Response[str]:
    """The OpenAPI document of this API."""
    return Response(200, "application/json", _openapi_document("/"))


@app.get("/swagger", include_in_schema=False)
def swagger() -> Response[str]:
    """The Swagger UI of this API; `?format=json` is the document it shows."""
    server = _stage_path() or "/"
    if (app.current_event.query_string_parameters or {}).get("format") == "json":
        return Response(200, "application/json", _swagger_spec(server))
    return Response(200, "text/html", _swagger_page(server))


def _stage_path() -> str:
    """What comes before this API's routes in the URL the request came to, so that the Swagger
    page's "Try it out" calls this API: `/<stage>` through API Gateway's stage URL, the base path
    under a custom domain that has one, empty when the routes are at the root (`sam local`,
    `pokewatch serve`)."""
    event = app.current_event
    full_path = event.request_context.path or ""
    return full_path.removesuffix(event.path) if full_path.endswith(event.path) else ""


@functools.cache
def _openapi_document(server: str) -> str:
    """The OpenAPI document for clients of `server`; the routes do not change once imported."""
    from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, Server

    return app.get_openapi_json_schema(
        title="PokeWatch API",
        version="1.0.0",
        description="Fair prices (median forecasts) with 80% intervals, expected prices (mean "
        "forecasts) and BUY / HOLD / SELL signals on the expected price, of Pokémon cards. "
        "Every route but /health, /openapi.json and /swagger needs an API key (`x-api-key`).",
        servers=[Server(url=server)],
        # `in` is a Python keyword: the field is given by its alias, in the data validated.
        security_schemes={
            "apiKey": APIKey.model_validate({"name": "x-api-key", "in": APIKeyIn.header})
        },
    )


@functools.cache
def _swagger_spec(server: str) -> str:
    """The document as the Swagger page embeds it in a script: `</` escaped, so that no text in
    it can close the script."""
    return _openapi_document(server).replace("</", "<\\/")


@functools.cache
def _swagger_page(server: str) -> str:
    """Swagger UI with its script and style inline (Powertools ships them): no CDN needed."""
    import importlib.resources

    from aws_lambda_powertools.event_handler.openapi import swagger_ui

    assets = importlib.resources.files(swagger_ui)
    return swagger_ui.generate_swagger_html(
        _swagger_spec(server),
        swagger_js=(assets / "swagger-ui-bundle.min.js").read_text(encoding="utf-8"),
        swagger_css=(assets / "swagger-ui.min.css").read_text(encoding="utf-8"),
        swagger_base_url="",
        oauth2_config=None,
    )


def _checked_content_type(event: dict) -> tuple[dict | None, dict]:
    """The 415 answer to a POST whose body is declared as something else than JSON, or None and
    the event with a JSON Content-Type in lower case.

    Checked before Powertools sees the request: it would parse form and multipart bodies, and a
    multipart body without a boundary makes it raise a bare ValueError (a 500). Media types are
    case-insensitive (RFC 9110, 8.3.1), but Powertools compares the header with
    `application/json` as written and would answer `APPLICATION/JSON` with a 415."""
    headers = event.get("headers") or {}
    key = next((k for k in headers if k.lower() == "content-type"), None)
    if key is None:
        return None, event
    content_type = headers[key].lower()
    if content_type.startswith("application/json"):
        if content_type == headers[key]:
            return None, event
        return None, {**event, "headers": {**headers, key: content_type}}
    if event.get("httpMethod") != "POST" or not event.get("body"):
        return None, event
    logger.info("request failed", extra={"status": 415, "error": "unsupported_media_type"})
    body = ErrorBody(error="unsupported_media_type", message=_NOT_JSON)
    return {
        "statusCode": 415,
        "multiValueHeaders": {"Content-Type": ["application/json"]},
        "body": body.model_dump_json(exclude_none=True),
        "isBase64Encoded": False,
    }, event


# --- entry point ---------------------------------------------------------------------------------
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def _handle(event: dict, context: LambdaContext) -> dict:
    started = time.perf_counter()
    refused, event = _checked_content_type(event)
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
