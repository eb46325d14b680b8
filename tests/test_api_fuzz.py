"""Property-based fuzzing of the API from its own OpenAPI document (schemathesis), against the local
server: valid and invalid requests generated for every operation never get a 5xx, and the answers
documented in the spec match their schemas."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import schemathesis
from api_fixtures import ROOT, promoted_store
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from pokewatch_local.lambda_runtime import LocalLambda
from pokewatch_local.server import ApiGatewayApp, make_server
from pokewatch_local.template import SamTemplate


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    """The OpenAPI document served by a local server over a store with a model in service."""
    store = promoted_store(tmp_path_factory.mktemp("store"))
    template = SamTemplate(ROOT / "template.yaml")
    lambdas = LocalLambda(template, {"POKEWATCH_STORE": store.uri})
    server = make_server(ApiGatewayApp(template, lambdas), "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield schemathesis.openapi.from_url(
            f"http://127.0.0.1:{server.effective_port}/openapi.json"
        )
    finally:
        server.close()
        thread.join(timeout=5)
        lambdas.restore_environment()


# Every documented operation, fuzzed with valid (positive) and invalid (negative) requests; /health
# takes no input, so it has no invalid request. (`schemathesis.pytest.from_fixture` does not run
# under pytest 9, hence the explicit parametrization.)
CASES = [
    (operation, mode)
    for operation in ("health", "listCards", "getCard", "predict", "predictBatch")
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if (operation, mode) != ("health", GenerationMode.NEGATIVE)
]


@pytest.mark.parametrize(("operation_id", "mode"), CASES)
def test_no_generated_request_gets_a_server_error(
    api_schema: schemathesis.BaseSchema, operation_id: str, mode: GenerationMode
) -> None:
    operation = api_schema.find_operation_by_id(operation_id)
    # Negative cases may be valid by accident, or break the documented answers on purpose.
    checks = [not_a_server_error]
    if mode is GenerationMode.POSITIVE:
        checks.append(response_schema_conformance)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=checks)

    check()
