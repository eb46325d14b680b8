"""Cold start of the API function next to its floor, as JSON.

    .venv/bin/python bench/api_cold_start.py [--repeat 7]

A moto S3 server holds a promoted 3,000-card × 120-day model. Each run is a fresh Python process:

- `floor`: `import boto3`, an S3 client, one GetObject of the serving file (SPEC section 9);
- `handler`: import the API function and answer its first `POST /predict` (pointer, serving file,
  parse, answer), with tracing off as locally;
- `handler_traced`: the same as in AWS with active tracing (Powertools Tracer with the X-Ray SDK;
  its segments go to a UDP port nobody listens on).

`import_ms` is the time to be ready (for the floor, with its S3 client), `total_ms` to the answer.
Times are measured inside each process from its first statement (the interpreter's own start is
the same for all and reported apart) and are medians over the repetitions, which interleave the
variants so that machine noise hits them alike; `ratio_to_floor` is the median (and quartiles)
of each round's ratio to the floor of the same round. One more run under `-X importtime` shows
where the handler's import time goes, by top-level package.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import time
import warnings
from collections import defaultdict
from typing import Any

from api_common import CARDS, DAYS, ROOT, card_id_of, realistic_model

from pokewatch import keys
from pokewatch.store import S3Store

BUCKET = "pokewatch-bench"
HANDLER_DIR = ROOT / "functions" / "api"

SERVING_KEY = keys.model_artifact("bench", keys.SERVING_FILE)

FLOOR = f"""
import time
started = time.perf_counter()
import boto3
client = boto3.client("s3")
imported = time.perf_counter()
data = client.get_object(Bucket={BUCKET!r}, Key={SERVING_KEY!r})["Body"].read()
done = time.perf_counter()
import json
timings = {{"import_ms": (imported - started) * 1e3, "total_ms": (done - started) * 1e3}}
print("RESULT", json.dumps(timings))
"""

HANDLER = f"""
import time
started = time.perf_counter()
import sys
sys.path.insert(0, {str(HANDLER_DIR)!r})
import app
imported = time.perf_counter()
event = {{
    "resource": "/predict", "path": "/predict", "httpMethod": "POST",
    "headers": {{"Content-Type": "application/json"}},
    "requestContext": {{"requestId": "cold", "stage": "bench", "path": "/bench/predict"}},
    "body": '{{"card_id": "{card_id_of(7)}"}}', "isBase64Encoded": False,
}}
class Context:
    function_name = "ApiFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:ApiFunction"
    aws_request_id = "cold"
response = app.lambda_handler(event, Context())
done = time.perf_counter()
assert response["statusCode"] == 200, response
import json
timings = {{"import_ms": (imported - started) * 1e3, "total_ms": (done - started) * 1e3}}
print("RESULT", json.dumps(timings))
"""


def start_s3() -> tuple[Any, dict[str, str]]:
    """A moto S3 server on a free port with the promoted model; the environment to reach it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # moto's note about its optional server extras
        from moto.server import ThreadedMotoServer
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log line per request

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POKEWATCH_STORE": f"s3://{BUCKET}",
    }
    os.environ.update(env)
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    realistic_model(S3Store(BUCKET))
    return server, env


def run(code: str, env: dict[str, str], *flags: str) -> tuple[dict[str, float], float, str]:
    """Run `code` in a fresh interpreter: its own timings, the wall time, and its stderr."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *flags, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    wall_ms = (time.perf_counter() - started) * 1e3
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), "RESULT {}")
    return json.loads(line.removeprefix("RESULT ")), wall_ms, done.stderr


def quartiles(values: list[float]) -> dict[str, float]:
    """The median and the quartiles of `values`, rounded to 0.01."""
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"median": round(median, 2), "q1": round(q1, 2), "q3": round(q3, 2)}


def import_breakdown(env: dict[str, str]) -> dict[str, float]:
    """Milliseconds of import time per top-level package (self times summed), largest first."""
    *_, stderr = run(HANDLER, env, "-X", "importtime")
    per_package: dict[str, float] = defaultdict(float)
    for found in re.finditer(r"import time:\s+(\d+) \|\s+\d+ \|\s+(\S+)", stderr):
        per_package[found[2].split(".")[0]] += int(found[1]) / 1e3
    ranked = sorted(per_package.items(), key=lambda kv: -kv[1])
    return {name: round(ms, 1) for name, ms in ranked[:15]}


def main() -> None:
    """Measure and print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    if args.repeat < 2:
        parser.error("--repeat must be at least 2 (the ratio is reported with its quartiles)")
    server, s3_env = start_s3()
    try:
        base = {"PATH": os.environ.get("PATH", ""), **s3_env, "POWERTOOLS_LOG_LEVEL": "WARNING"}
        lambda_env = {
            **base,
            "AWS_LAMBDA_FUNCTION_NAME": "ApiFunction",
            "POWERTOOLS_SERVICE_NAME": "pokewatch-api",
            "POWERTOOLS_METRICS_NAMESPACE": "PokeWatch",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "PYDANTIC_DISABLE_PLUGINS": "__all__",
        }
        variants = {
            "floor": (FLOOR, base),
            "handler": (HANDLER, {**lambda_env, "POWERTOOLS_TRACE_DISABLED": "true"}),
            "handler_traced": (
                HANDLER,
                {
                    **lambda_env,
                    "LAMBDA_TASK_ROOT": str(HANDLER_DIR),
                    "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
                    "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
                    "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
                },
            ),
        }
        samples: dict[str, list[tuple[dict[str, float], float]]] = defaultdict(list)
        interpreter = [run("pass", base)[1] for _ in range(args.repeat)]
        for _ in range(args.repeat):
            for name, (code, env) in variants.items():
                timings, wall, _ = run(code, env)
                samples[name].append((timings, wall))
        report: dict[str, Any] = {
            "benchmark": "api_cold_start",
            "serving_file": {
                "cards": CARDS,
                "days": DAYS,
                "bytes": len(S3Store(BUCKET).get_bytes(SERVING_KEY)),
            },
            "repeat": args.repeat,
            "interpreter_start_ms": round(statistics.median(interpreter), 1),
        }
        for name, runs in samples.items():
            report[name] = {
                "import_ms": round(statistics.median(t["import_ms"] for t, _ in runs), 1),
                "total_ms": round(statistics.median(t["total_ms"] for t, _ in runs), 1),
                "process_wall_ms": round(statistics.median(w for _, w in runs), 1),
            }
        # Each round's ratio to that round's floor, so that a slow spell of the machine (common on
        # a shared VM) cancels out instead of landing on one variant.
        report["ratio_to_floor"] = {
            name: quartiles(
                [
                    t["total_ms"] / f["total_ms"]
                    for (t, _), (f, _) in zip(runs, samples["floor"], strict=True)
                ]
            )
            for name, runs in samples.items()
            if name != "floor"
        }
        report["goal_ratio"] = 1.5
        report["handler_import_ms_by_package"] = import_breakdown(variants["handler"][1])
        print(json.dumps(report, indent=1))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
