"""`pokewatch serve` under concurrent load from another process, as JSON.

    .venv/bin/python bench/api_load.py [--clients 8] [--seconds 10]

The server runs as its own process (`pokewatch serve` on 127.0.0.1, a free port) over a store
with a 3,000-card × 120-day model. This process runs the clients, one thread and one keep-alive
connection each, cycling through a mix: `POST /predict` (most), a 10-item batch, `GET /cards`,
`GET /cards/{id}`, and a malformed predict (which must be a 422). Every answer is checked:
its status, and for a prediction that it is about the card asked for.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import tempfile
import threading
import time
from collections import Counter
from typing import Any

from api_common import CARDS, card_id_of, percentiles, realistic_model, serve_process

from pokewatch.store import LocalStore

JSON = {"Content-Type": "application/json"}


def request_mix(i: int) -> tuple[str, str, str | None, int, str | None]:
    """Request number `i` of a client: method, path, body, expected status, expected card id."""
    card = card_id_of((i * 7919) % CARDS)
    kind = i % 10
    if kind == 7:
        items = [{"card_id": card_id_of((i + k) % CARDS)} for k in range(10)]
        return "POST", "/predict/batch", json.dumps({"items": items}), 200, None
    if kind == 8:
        return "GET", f"/cards?limit=20&q={i % 97}", None, 200, None
    if kind == 9:
        return "GET", f"/cards/{card}", None, 200, card
    if kind == 6:
        return "POST", "/predict", '{"card_id": "' + card + '", "market_price": NaN}', 422, None
    return "POST", "/predict", json.dumps({"card_id": card, "market_price": 10.0}), 200, card


def client(port: int, deadline: float, offset: int, out: dict[str, Any]) -> None:
    """Send the mix until `deadline` on one keep-alive connection; record latencies and errors."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    wrong = 0
    i = offset
    while time.perf_counter() < deadline:
        method, path, body, expected, card = request_mix(i)
        started = time.perf_counter()
        connection.request(method, path, body=body, headers=JSON if body else {})
        response = connection.getresponse()
        data = response.read()
        latencies.append((time.perf_counter() - started) * 1e3)
        statuses[response.status] += 1
        if response.status != expected or (card and json.loads(data)["card_id"] != card):
            wrong += 1
        i += 1
    connection.close()
    out.update(latencies=latencies, statuses=statuses, wrong=wrong)


def start_server(store: LocalStore) -> tuple[subprocess.Popen[str], int]:
    """`pokewatch serve` on a free port, once it answers /health."""
    process, port = serve_process(
        store,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "POWERTOOLS_LOG_LEVEL": "WARNING"},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return process, port
        except OSError:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError("pokewatch serve did not come up")


def main() -> None:
    """Load the server and print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        store = LocalStore(root)
        realistic_model(store)
        process, port = start_server(store)
        try:
            results: list[dict[str, Any]] = [{} for _ in range(args.clients)]
            deadline = time.perf_counter() + args.seconds
            threads = [
                threading.Thread(target=client, args=(port, deadline, n * 1000, results[n]))
                for n in range(args.clients)
            ]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
        finally:
            process.terminate()
            process.wait(timeout=10)
    statuses: Counter[int] = sum((r["statuses"] for r in results), Counter())
    latencies = [ms for r in results for ms in r["latencies"]]
    report = {
        "benchmark": "api_load",
        "clients": args.clients,
        "seconds": round(elapsed, 2),
        "requests": len(latencies),
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "server_errors_5xx": sum(v for k, v in statuses.items() if k >= 500),
        "unexpected_answers": sum(r["wrong"] for r in results),
        "latency": percentiles(latencies),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
