"""The prediction API: health, card listing and detail, predict and batch predict (SPEC §7)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pokewatch import prediction
from pokewatch.api_schemas import (
    BatchRequest,
    BatchResponse,
    CardDetail,
    CardPage,
    ErrorBody,
    Health,
    ItemError,
    Prediction,
    PredictRequest,
)
from pokewatch.model_loader import ModelLoader, ModelUnavailable
from pokewatch.serving import ServingTable
from pokewatch.settings import get_settings
from pokewatch.store import open_store
from pydantic import ValidationError

settings = get_settings()
logger = Logger(service="pokewatch-api")
tracer = Tracer(service="pokewatch-api")
metrics = Metrics(namespace="PokeWatch", service="pokewatch-api")
app = APIGatewayRestResolver(enable_validation=True)
app.enable_swagger(path="/swagger", title="PokeWatch API", version="1.0.0")
loader = ModelLoader(lambda: open_store(settings.store), settings.model_ttl_seconds)


def _error(status: int, code: str, message: str, details: list[dict] | None = None) -> Response:
    body = ErrorBody(error=code, message=message, details=details)
    return Response(status, "application/json", body.model_dump(exclude_none=True))


def _table() -> ServingTable:
    return loader.state().table


@app.exception_handler(RequestValidationError)
def _invalid_request(exc: RequestValidationError) -> Response:
    details = [{"field": _field_name(e), "problem": e["msg"]} for e in exc.errors()]
    fields = ", ".join(d["field"] or "body" for d in details)
    return _error(422, "invalid_request", f"invalid request: {fields}", details)


def _field_name(error: dict) -> str:
    """`query.limit`, `market_price`, or `body` for a body that is not JSON at all."""
    location = [str(p) for p in error.get("loc", ())]
    if error.get("type") == "json_invalid" or location == ["body"]:
        return "body"
    return ".".join(location[1:] if location[:1] == ["body"] else location)


@app.exception_handler(ModelUnavailable)
def _unavailable(exc: ModelUnavailable) -> Response:
    return _error(503, "model_unavailable", f"no model in service: {exc}")


@app.exception_handler(prediction.NotFound)
def _not_found(exc: prediction.NotFound) -> Response:
    return _error(404, "not_found", str(exc))


@app.exception_handler(prediction.BadCursor)
def _bad_cursor(exc: prediction.BadCursor) -> Response:
    return _error(400, "invalid_cursor", str(exc))


@app.not_found
def _no_route(_: Exception) -> Response:
    return _error(
        404, "no_route", f"no route {app.current_event.http_method} {app.current_event.path}"
    )


@app.get("/health")
def health() -> Response[Health]:
    """Whether a model is in service, which one, and how fresh its data is."""
    try:
        state = loader.state()
    except ModelUnavailable as exc:
        body = Health(status="unavailable", detail=str(exc))
        return Response(503, "application/json", body.model_dump(mode="json", exclude_none=True))
    facts = state.table.facts
    body = Health(
        status="degraded" if state.problem else "ok",
        model_version=facts.model_version,
        trained_at=facts.trained_at,
        data_as_of=facts.data_as_of,
        cards=len(state.table.cards),
        detail=state.problem,
    )
    return Response(200, "application/json", body.model_dump(mode="json", exclude_none=True))


@app.get("/cards")
def list_cards(
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    set: Annotated[str | None, Query(max_length=100)] = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
) -> CardPage:
    """Cards in service, filtered by set and name, a page at a time."""
    return prediction.list_cards(_table(), limit=limit, cursor=cursor, set_id=set, query=q)


@app.get("/cards/<card_id>")
def card_detail(card_id: Annotated[str, Path(max_length=128)]) -> CardDetail:
    """One card with its recent price history and its latest prediction."""
    return prediction.card_detail(
        _table(), card_id, settings.buy_threshold, settings.sell_threshold
    )


@app.post("/predict")
def predict(request: PredictRequest) -> Prediction:
    """The fair price of one card, its interval and the BUY / HOLD / SELL signal."""
    answer = prediction.predict(_table(), request, settings.buy_threshold, settings.sell_threshold)
    metrics.add_metric(name="CardsPredicted", unit=MetricUnit.Count, value=1)
    return answer


@app.post("/predict/batch")
def predict_batch(request: BatchRequest) -> BatchResponse:
    """Up to 100 predictions in order; a failed item gets an error object, the rest an answer."""
    table = _table()
    results: list[Prediction | ItemError] = []
    for index, item in enumerate(request.items):
        card_id = item.get("card_id") if isinstance(item.get("card_id"), str) else None
        try:
            results.append(
                prediction.predict(
                    table,
                    PredictRequest.model_validate(item),
                    settings.buy_threshold,
                    settings.sell_threshold,
                )
            )
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'item'}: {e['msg']}" for e in exc.errors()
            )
            results.append(
                ItemError(
                    index=index, status=422, error="invalid_item", message=problems, card_id=card_id
                )
            )
        except prediction.NotFound as exc:
            results.append(
                ItemError(
                    index=index, status=404, error="not_found", message=str(exc), card_id=card_id
                )
            )
    answered = sum(isinstance(r, Prediction) for r in results)
    metrics.add_metric(name="CardsPredicted", unit=MetricUnit.Count, value=answered)
    return BatchResponse(results=results)


@app.get("/openapi.json", include_in_schema=False)
def openapi_spec():  # unannotated on purpose: the document is served as is
    """The OpenAPI document of this API."""
    return Response(
        200, "application/json", app.get_openapi_json_schema(title="PokeWatch API", version="1.0.0")
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    """API Gateway (REST) proxy integration entry point."""
    return app.resolve(event, context)
