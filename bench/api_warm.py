"""Warm latency of the API function in process, next to FastAPI + Mangum doing the same, as JSON.

    .venv/bin/python bench/api_warm.py [--predicts 5000] [--batches 500]

Both handlers get the same API Gateway (REST) proxy events for `POST /predict` and a 100-item
`POST /predict/batch` over a 3,000-card × 120-day model, and answer them with the same
`pokewatch.prediction` functions. The Powertools handler runs as in Lambda: validation, Logger,
Metrics (EMF written to a discarded stdout), Tracer off (no X-Ray daemon here).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

from api_common import CARDS, DAYS, ROOT, card_id_of, percentiles, realistic_model

from pokewatch import prediction
from pokewatch.api_schemas import BatchRequest, BatchResponse, ItemError, PredictRequest
from pokewatch.api_schemas import Prediction as PredictionModel
from pokewatch.model_loader import ModelLoader
from pokewatch.settings import get_settings
from pokewatch.store import LocalStore, open_store

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class Context:
    """The attributes of the Lambda context both frameworks read."""

    function_name = "ApiFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:ApiFunction"
    aws_request_id = "warm"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        """Plenty."""
        return 10_000


def event(path: str, body: dict[str, Any]) -> dict[str, Any]:
    """A REST proxy event for a JSON POST."""
    return {
        "resource": path,
        "path": path,
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json", "Host": "bench"},
        "multiValueHeaders": {"Content-Type": ["application/json"], "Host": ["bench"]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": "POST",
            "path": f"/bench{path}",
            "stage": "bench",
            "requestId": "warm",
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def powertools_handler() -> Handler:
    """The API function itself."""
    spec = importlib.util.spec_from_file_location("app", ROOT / "functions" / "api" / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler


def fastapi_handler() -> Handler:
    """The same two routes in FastAPI, served through Mangum (the usual alternative). FastAPI
    resolves the string annotations of the routes in this module's globals."""
    from fastapi import FastAPI, HTTPException
    from mangum import Mangum
    from pydantic.warnings import UnsupportedFieldAttributeWarning

    settings = get_settings()
    loader = ModelLoader(lambda: open_store(settings.store), settings.model_ttl_seconds)
    thresholds = (settings.buy_threshold, settings.sell_threshold)
    # The models build their validators on first use; built inside FastAPI's body parameter
    # (which carries an alias) pydantic warns that the alias has no effect on a model.
    warnings.filterwarnings(
        "ignore", "The 'alias' attribute", category=UnsupportedFieldAttributeWarning
    )
    api = FastAPI()

    @api.post("/predict")
    def predict(request: PredictRequest) -> PredictionModel:
        try:
            return prediction.predict(loader.state().table, request, *thresholds)
        except prediction.NotFound as exc:
            raise HTTPException(404, str(exc)) from exc

    @api.post("/predict/batch")
    def predict_batch(request: BatchRequest) -> BatchResponse:
        table = loader.state().table
        results: list[PredictionModel | ItemError] = []
        for index, item in enumerate(request.items):
            try:
                one = PredictRequest.model_validate(item)
                results.append(prediction.predict(table, one, *thresholds))
            except prediction.NotFound as exc:
                results.append(
                    ItemError(index=index, status=404, error="not_found", message=str(exc))
                )
        return BatchResponse(results=results)

    return Mangum(api, lifespan="off")


def measure(handler: Handler, request: dict[str, Any], n: int) -> dict[str, dict[str, float]]:
    """Latency percentiles of `n` calls after a warm-up, each answer checked: wall time, and the
    CPU time of the calling thread (which a busy machine's preemptions do not inflate)."""
    context = Context()
    wall, cpu = [], []
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        for _ in range(min(200, n)):
            response = handler(request, context)
            assert response["statusCode"] == 200, response
        for _ in range(n):
            started, started_cpu = time.perf_counter_ns(), time.thread_time_ns()
            response = handler(request, context)
            cpu.append((time.thread_time_ns() - started_cpu) / 1e6)
            wall.append((time.perf_counter_ns() - started) / 1e6)
            assert response["statusCode"] == 200
    return {"wall": percentiles(wall), "cpu": percentiles(cpu)}


def main() -> None:
    """Measure and print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predicts", type=int, default=5000)
    parser.add_argument("--batches", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        realistic_model(LocalStore(root))
        os.environ.update(
            {
                "POKEWATCH_STORE": root,
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_METRICS_NAMESPACE": "PokeWatch",
                "POWERTOOLS_LOG_LEVEL": "WARNING",  # stdout carries only the report
                "AWS_LAMBDA_FUNCTION_NAME": "ApiFunction",
            }
        )
        predict = event("/predict", {"card_id": card_id_of(7), "market_price": 12.5})
        batch = event(
            "/predict/batch", {"items": [{"card_id": card_id_of(i * 29)} for i in range(100)]}
        )
        report: dict[str, Any] = {
            "benchmark": "api_warm",
            "model": {"cards": CARDS, "days": DAYS},
            "goals": {"predict_p99_ms": 1.0, "batch_100_ms": 10.0},
        }
        for name, factory in (
            ("powertools", powertools_handler),
            ("fastapi_mangum", fastapi_handler),
        ):
            handler = factory()
            gc.collect()
            report[name] = {
                "predict": measure(handler, predict, args.predicts),
                "batch_100": measure(handler, batch, args.batches),
            }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
