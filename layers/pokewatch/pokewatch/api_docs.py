"""The API's OpenAPI document and Swagger page, generated from its routes when first asked for.

Nothing here is built at import: Powertools' OpenAPI models (imported by `configure_openapi` or
`enable_swagger`) would be a third of the API function's cold start, paid by every request.
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any

from pokewatch.api_errors import ERROR_MEANINGS
from pokewatch.api_schemas import ErrorBody

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver
    from aws_lambda_powertools.event_handler.openapi.types import (
        OpenAPIResponse,
        OpenAPIResponseContentModel,
        OpenAPIResponseContentSchema,
    )
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

TITLE = "PokeWatch API"
VERSION = "1.0.0"
DESCRIPTION = (
    "Fair prices (median forecasts) with 80% intervals, expected prices (mean forecasts) and "
    "BUY / HOLD / SELL signals on the expected price, of Pokémon cards. Every route but /health, "
    "/openapi.json and /swagger needs an API key (`x-api-key`)."
)
#: The security requirement of a route that needs the API key.
KEYED: list[dict[str, list[str]]] = [{"apiKey": []}]


def route_responses(answer: str, *errors: int) -> dict[int, OpenAPIResponse]:
    """The OpenAPI responses of a route: its answer (the return annotation) and its errors
    (`error_responses`)."""
    return {200: {"description": answer}, **error_responses(*errors)}


def error_responses(*errors: int) -> dict[int, OpenAPIResponse]:
    """The OpenAPI responses of `errors`, each an `ErrorBody`, and of the 500 any route answers
    to an unexpected failure."""
    error_content: dict[str, OpenAPIResponseContentSchema | OpenAPIResponseContentModel] = {
        "application/json": {"model": ErrorBody}
    }
    return {s: {"description": ERROR_MEANINGS[s], "content": error_content} for s in (*errors, 500)}


def stage_path(event: APIGatewayProxyEvent) -> str:
    """What comes before the API's routes in the URL the request came to, so that the Swagger
    page's "Try it out" calls this API: `/<stage>` through API Gateway's stage URL, the base path
    under a custom domain that has one, empty when the routes are at the root (`sam local`,
    `pokewatch serve`)."""
    full_path = event.request_context.path or ""
    return full_path.removesuffix(event.path) if full_path.endswith(event.path) else ""


@functools.cache
def openapi_document(app: APIGatewayRestResolver, server: str) -> str:
    """The OpenAPI document of `app` for clients of `server`; routes do not change once imported."""
    from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, Server

    document = json.loads(
        app.get_openapi_json_schema(
            title=TITLE,
            version=VERSION,
            description=DESCRIPTION,
            servers=[Server(url=server)],
            # `in` is a Python keyword: the field is given by its alias, in the data validated.
            security_schemes={
                "apiKey": APIKey.model_validate({"name": "x-api-key", "in": APIKeyIn.header})
            },
        )
    )
    return json.dumps(_without_default_validation_errors(document), indent=2)


#: Powertools' own 422 and its schemas: it documents one on every route, also on a route that
#: takes no input (/health, which never answers it), and in its shape, not `ErrorBody`'s.
_DEFAULT_422 = "#/components/schemas/HTTPValidationError"
_DEFAULT_422_SCHEMAS = ("HTTPValidationError", "ValidationError", "ResponseValidationError")


def _without_default_validation_errors(document: dict[str, Any]) -> dict[str, Any]:
    """`document` without Powertools' default 422s: each route declares the 422 it answers."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            for status, response in list(responses.items()):
                if _DEFAULT_422 in json.dumps(response):
                    del responses[status]
    schemas = document.get("components", {}).get("schemas", {})
    removed = {name: schemas.pop(name) for name in _DEFAULT_422_SCHEMAS if name in schemas}
    if any(f'#/components/schemas/{name}"' in json.dumps(document) for name in removed):
        schemas.update(removed)  # still used by something this did not remove: keep them
    return document


@functools.cache
def swagger_document(app: APIGatewayRestResolver, server: str) -> str:
    """The document as the Swagger page embeds it in a script: `</` escaped, so that no text in
    it can close the script."""
    return openapi_document(app, server).replace("</", "<\\/")


@functools.cache
def swagger_page(app: APIGatewayRestResolver, server: str) -> str:
    """Swagger UI with its script and style inline (Powertools ships them): no CDN needed."""
    import importlib.resources

    from aws_lambda_powertools.event_handler.openapi import swagger_ui

    assets = importlib.resources.files(swagger_ui)
    return swagger_ui.generate_swagger_html(
        swagger_document(app, server),
        swagger_js=(assets / "swagger-ui-bundle.min.js").read_text(encoding="utf-8"),
        swagger_css=(assets / "swagger-ui.min.css").read_text(encoding="utf-8"),
        swagger_base_url="",
        oauth2_config=None,
    )
