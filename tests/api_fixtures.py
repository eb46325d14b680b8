"""Shared helpers of the API tests and benchmarks: a synthetic serving file, a store with a
promoted model, the handler module loaded against that store, and API Gateway (REST) events.

No ML pipeline runs here: the serving file is written directly with `serving_file_bytes`, and the
model is put in service with `registry.promote`, exactly as the promote step would.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import math
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pokewatch import registry
from pokewatch.keys import SERVING_FILE, model_artifact
from pokewatch.serving import COLUMNS, CardInfo, ModelFacts, serving_file_bytes
from pokewatch.settings import get_settings
from pokewatch.store import ArtifactStore, LocalStore

ROOT = Path(__file__).resolve().parents[1]
HANDLER_PATH = ROOT / "functions" / "api" / "app.py"
LAST_DAY = dt.date(2025, 6, 30)
SETS = (("sv1", "Scarlet & Violet"), ("sv2", "Paldea Évolved"), ("base1", "Base Set"))
NAMES = ("Pikachu", "Flabébé", "Charizard ex", "Mr. Mime", "Nidoran♀", "Porygon-Z")


def card_id_of(index: int) -> str:
    """The id of the synthetic card number `index`."""
    set_id = SETS[index % len(SETS)][0]
    return f"{set_id}-{index:04d}_holofoil"


def first_day_of(index: int, n_days: int) -> dt.date:
    """The first served day of card `index`: every fourth card starts later, so that a date
    before it has no data (a 404 that is not an unknown card)."""
    late_start = n_days // 2 if index % 4 == 3 else 0
    return LAST_DAY - dt.timedelta(days=n_days - 1 - late_start)


#: The fixture's expected price relative to its fair price (apart, so a test tells them apart).
EXPECTED_OVER_FAIR = 1.04


def serving_bytes(version: str = "v1", n_cards: int = 24, n_days: int = 30) -> bytes:
    """A deterministic serving file: `n_cards` cards with up to `n_days` daily rows each, the
    fair price a smooth function of the card and the day (so answers are predictable)."""
    cards, counts = [], []
    columns: dict[str, list[float]] = {name: [] for name in COLUMNS}
    for i in range(n_cards):
        set_id, set_name = SETS[i % len(SETS)]
        cards.append(
            CardInfo(
                card_id=card_id_of(i),
                name=f"{NAMES[i % len(NAMES)]} {i}",
                set_id=set_id,
                set_name=set_name,
                rarity="Rare Holo",
                variant="holofoil",
            )
        )
        start = first_day_of(i, n_days)
        days = (LAST_DAY - start).days + 1
        counts.append(days)
        base = 2.0 + 3.0 * (i % 17)
        for d in range(days):
            fair = base * (1 + 0.002 * d)
            columns["day"].append(start.toordinal() + d)
            columns["price"].append(fair * (1 + 0.2 * math.sin(i + d / 5)))
            columns["fair"].append(fair)
            columns["low"].append(fair * 0.85)
            columns["high"].append(fair * 1.15)
            columns["expected"].append(fair * EXPECTED_OVER_FAIR)
    facts = ModelFacts(
        model_version=version,
        trained_at=dt.datetime(2025, 7, 1, 3, 0, tzinfo=dt.UTC),
        data_as_of=LAST_DAY,
        horizon_days=28,
        interval_level=0.8,
    )
    return serving_file_bytes(facts, cards, counts, columns)


def put_model(store: ArtifactStore, version: str, **sizes: int) -> None:
    """Write the serving file of `version` (not yet in service)."""
    store.put_bytes(model_artifact(version, SERVING_FILE), serving_bytes(version, **sizes))


def promote_model(store: ArtifactStore, version: str, **sizes: int) -> None:
    """Write the serving file of `version` and put it in service."""
    put_model(store, version, **sizes)
    registry.promote(store, version)


def serve_process(store: ArtifactStore, **popen: Any) -> tuple[subprocess.Popen[str], int]:
    """`pokewatch serve` over `store` started in its own process on a free port (the caller
    waits for it and stops it); `popen` goes to subprocess.Popen (output, environment)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pokewatch = str(Path(sys.executable).with_name("pokewatch"))
    command = [pokewatch, "serve", "--store", store.uri, "--port", str(port)]
    return subprocess.Popen(command, cwd=ROOT, text=True, **popen), port


def load_handler(store_uri: str, **env: str) -> ModuleType:
    """A fresh copy of the API function's module (a cold start) reading `store_uri`.

    The environment is set for the import only (the module reads its settings once, as in a
    Lambda cold start); callers restore it through `monkeypatch` or `handler_env`."""
    os.environ["POKEWATCH_STORE"] = store_uri
    os.environ.update(env)
    get_settings.cache_clear()
    name = f"pokewatch_api_app_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, HANDLER_PATH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    get_settings.cache_clear()
    return module


#: Hostile or malformed /predict bodies: (raw body, expected status, field named in the details).
HOSTILE_BODIES = [
    # (raw body, expected status, field named in the details or None)
    ('{"card_id": "sv1-0000_holofoil", "market_price": NaN}', 422, "body"),
    ('{"card_id": "sv1-0000_holofoil", "market_price": Infinity}', 422, "body"),
    ('{"card_id": "sv1-0000_holofoil", "market_price": -Infinity}', 422, "body"),
    ('{"card_id": "sv1-0000_holofoil", "market_price": 1e999}', 422, "market_price"),
    ('{"card_id": "sv1-0000_holofoil", "market_price": -3}', 422, "market_price"),
    ('{"card_id": "sv1-0000_holofoil", "market_price": 0}', 422, "market_price"),
    # Below a cent: 5e-324 was answered as a BUY at -100%.
    ('{"card_id": "sv1-0000_holofoil", "market_price": 5e-324}', 422, "market_price"),
    ('{"card_id": "sv1-0000_holofoil", "market_price": 0.009}', 422, "market_price"),
    ('{"card_id": "sv1-0000_holofoil", "market_price": 1' + "0" * 5_000 + "}", 422, "body"),
    ('{"card_id": "sv1-0000_holofoil", "market_price": "12.5"}', 422, "market_price"),
    ('{"card_id": "sv1-0000_holofoil", "market_price": true}', 422, "market_price"),
    ('{"card_id": "sv1-0000_holofoil", "date": "0001-01-01"}', 422, "date"),
    ('{"card_id": "sv1-0000_holofoil", "date": "9999-12-31"}', 422, "date"),
    ('{"card_id": "sv1-0000_holofoil", "date": "2024-02-30"}', 422, "date"),
    ('{"card_id": "sv1-0000_holofoil", "date": "yesterday"}', 422, "date"),
    # Not read as seconds since 1970 (1704067200 is 2024-01-01, "20240101" is 1970-08-23).
    ('{"card_id": "sv1-0000_holofoil", "date": 1704067200}', 422, "date"),
    ('{"card_id": "sv1-0000_holofoil", "date": "1704067200"}', 422, "date"),
    ('{"card_id": "sv1-0000_holofoil", "date": 1704067200.0}', 422, "date"),
    ('{"card_id": "sv1-0000_holofoil", "date": "20240101"}', 422, "date"),
    ('{"card_id": "sv1-0000_holofoil", "card_id": "sv2-0001_holofoil"}', 422, "body"),
    ('{"card_id": "sv1-0000_holofoil", "cardid": "typo"}', 422, "cardid"),
    ('{"card_id": "../../etc/passwd"}', 422, "card_id"),
    ('{"card_id": "%2e%2e%2f"}', 422, "card_id"),
    ('{"card_id": "\\u0000"}', 422, "card_id"),
    ('{"card_id": "\\ud800"}', 422, "card_id"),
    ('{"card_id": "ピカチュウ"}', 422, "card_id"),
    ('{"card_id": 42}', 422, "card_id"),
    ('{"card_id": {"$ne": null}}', 422, "card_id"),
    ("{}", 422, "card_id"),
    ("[]", 422, "body"),
    # Powertools reads a list body as its first element: a list must not be taken for the object.
    ('[{"card_id": "sv1-0000_holofoil"}]', 422, "body"),
    ('[{"card_id": "nope-1_holofoil"}, {"card_id": "sv1-0000_holofoil"}]', 422, "body"),
    ('"x"', 422, "body"),
    ("42", 422, "body"),
    ("null", 422, "body"),
    ("", 422, "body"),
    ("{", 422, "body"),
    ("{'card_id': 'x'}", 422, "body"),
    ("[" * 30_000 + "]" * 30_000, 422, "body"),
    ('{"a":' * 10_000 + "1" + "}" * 10_000, 422, "body"),
    ('{"card_id": "' + "x" * 70_000 + '"}', 413, None),
]


#: Locally, Powertools must neither print metrics nor reach X-Ray (as in the local runtime).
QUIET_POWERTOOLS = {
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}


def quiet_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Quiet Powertools, and make `monkeypatch` restore what `load_handler` sets."""
    for key, value in QUIET_POWERTOOLS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("POKEWATCH_STORE", raising=False)
    monkeypatch.delenv("POKEWATCH_MODEL_TTL_SECONDS", raising=False)
    monkeypatch.delenv("AWS_EXECUTION_ENV", raising=False)  # in Lambda, the API pauses the GC


def promoted_store(root: Path, version: str = "v1", **sizes: int) -> LocalStore:
    """A local store under `root` with model `version` in service."""
    local = LocalStore(root)
    promote_model(local, version, **sizes)
    return local


class LambdaContext:
    """The attributes of the Lambda context that Powertools reads."""

    function_name = "ApiFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:ApiFunction"
    function_version = "$LATEST"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        """Plenty of time left."""
        return 10_000


def api_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    raw_body: str | None = None,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    """The API Gateway REST proxy event of one request. `body` is sent as JSON; `raw_body` as is
    (for malformed input)."""
    if body is not None:
        raw_body = json.dumps(body)
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    all_headers = {k: v for k, v in all_headers.items() if v is not None}
    resource = "/cards/{card_id}" if path.startswith("/cards/") else path
    card_id = path.removeprefix("/cards/") if path.startswith("/cards/") else None
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": {"card_id": card_id} if card_id is not None else None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/test{path}",
            "stage": "test",
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "127.0.0.1"},
            "accountId": "000000000000",
            "apiId": "test",
        },
        "body": raw_body,
        "isBase64Encoded": base64_body,
    }


def invoke(handler: ModuleType, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    """Call the handler with the event of one request: (status, decoded JSON body)."""
    response = handler.lambda_handler(api_event(method, path, **kwargs), LambdaContext())
    body = response.get("body")
    return response["statusCode"], json.loads(body) if "json" in header(
        response, "Content-Type"
    ) else body


def header(response: dict[str, Any], name: str) -> str:
    """A header of a proxy response (Powertools answers REST events with multiValueHeaders)."""
    single = response.get("headers") or {}
    multi = response.get("multiValueHeaders") or {}
    return single.get(name) or ",".join(multi.get(name, []))
