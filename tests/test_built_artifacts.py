"""Smoke test of what `sam build` produces: every function run from `.aws-sam/build/<Function>`
with only its own layers, laid out as Lambda lays them out, in a clean interpreter.

The rest of the suite imports from the development venv, where every dependency is installed;
this is where a package missing from a layer's requirements, or slimmed away by a layer Makefile,
shows up. The pipeline steps run in the state machine's order (plan → collect each set →
preprocess → train → validate → promote) against a temporary local store, then the API answers
its sample events from what they produced.

It builds for x86_64 into a temporary directory (a minute or two), or takes an existing build
from POKEWATCH_SAM_BUILD_DIR (`make smoke` passes the one `make build` made).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import botocore
import dateutil
import jmespath
import pytest
import s3transfer
import six
import urllib3
from market_fixtures import OPEN_GATE

from pokewatch_local.template import SamTemplate

ROOT = Path(__file__).resolve().parents[1]
SAM_BIN = ROOT / ".venv-sam" / "bin"
EVENTS = ROOT / "events"
#: What the python3.13 Lambda runtime itself provides on top of the standard library.
RUNTIME_PACKAGES = [boto3, botocore, s3transfer, jmespath, dateutil, urllib3]
RUNTIME_MODULES = [six]


def _load_size_checker():
    # tools/ is not a package; its reader of the built template is what this test needs too.
    spec = importlib.util.spec_from_file_location("check_sizes", ROOT / "tools" / "check_sizes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_sizes = _load_size_checker()

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (SAM_BIN / "sam").exists() and "POKEWATCH_SAM_BUILD_DIR" not in os.environ,
        reason="no .venv-sam to build with (make validate creates it)",
    ),
]

#: Imports the handler from /var/task and calls it as the Lambda runtime would.
BOOTSTRAP = """
import json, sys
task, opt, runtime, event_path = sys.argv[1:5]
sys.path[:0] = [task, opt + "/python", runtime]

class Context:
    function_name = "smoke"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:smoke"
    log_group_name = log_stream_name = "smoke"

    def get_remaining_time_in_millis(self):
        return 900_000

from app import lambda_handler

with open(event_path) as event:
    answer = lambda_handler(json.load(event), Context())
sys.stdout.write("\\nSMOKE-ANSWER " + json.dumps(answer) + "\\n")
"""


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("POKEWATCH_SAM_BUILD_DIR")
    if given:
        return Path(given).resolve()
    target = tmp_path_factory.mktemp("sam-build")
    # sam build runs the layer Makefiles with python3.13: the interpreter running this test.
    path = os.pathsep.join([str(SAM_BIN), str(Path(sys.executable).parent), os.environ["PATH"]])
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "LAYER_ARCH": "x86_64", "PATH": path}
    done = subprocess.run(
        [
            str(SAM_BIN / "sam"),
            "build",
            "--build-dir",
            str(target),
            "--parameter-overrides",
            "Architecture=x86_64",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return target


@pytest.fixture(scope="module")
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The AWS SDK and its dependencies, as /var/lang's site-packages provides them."""
    target = tmp_path_factory.mktemp("runtime")
    for package in RUNTIME_PACKAGES:
        source = Path(package.__file__).parent
        (target / source.name).symlink_to(source)
    for module in RUNTIME_MODULES:
        source = Path(module.__file__)
        (target / source.name).symlink_to(source)
    return target


class BuiltFunctions:
    """Runs built functions, each with its layers merged into its own /opt."""

    def __init__(self, build_dir: Path, runtime: Path, work: Path) -> None:
        self.build_dir = build_dir
        self.runtime = runtime
        self.work = work
        self.template = SamTemplate(ROOT / "template.yaml")
        self.store = work / "store"
        self.tmp = work / "tmp"
        self.tmp.mkdir()
        self._layers = check_sizes.function_layers(check_sizes.load_built_template(build_dir))

    def _opt(self, logical_id: str) -> Path:
        """Lambda extracts every layer into /opt, later layers over earlier ones."""
        opt = self.work / f"opt-{logical_id}"
        if not opt.exists():
            (opt / "python").mkdir(parents=True)
            for layer in self._layers[logical_id]:
                for entry in (self.build_dir / layer / "python").iterdir():
                    link = opt / "python" / entry.name
                    if link.is_symlink():
                        link.unlink()
                    link.symlink_to(entry)
        return opt

    def invoke(self, folder: str, event: dict | Path) -> object:
        spec = self.template.function(folder)
        if isinstance(event, dict):
            event_path = self.work / f"event-{folder}.json"
            event_path.write_text(json.dumps(event))
        else:
            event_path = event
        env = {
            **spec.environment,
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.work),
            "TMPDIR": str(self.tmp),
            "LANG": "C.UTF-8",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "POKEWATCH_STORE": str(self.store),
            "POWERTOOLS_TRACE_DISABLED": "true",
            # One OpenMP thread: scikit-learn's spinning threads slow down by orders of magnitude
            # when the suite's other workers hold the cores (Lambda gives them to us alone).
            "OMP_NUM_THREADS": "1",
            **OPEN_GATE,
        }
        done = subprocess.run(
            [
                sys.executable,
                # Isolated, no site-packages, and no bytecode written into the build: Lambda's
                # /opt and /var/task are read-only, and .pyc files would inflate the sizes.
                "-I",
                "-S",
                "-B",
                "-c",
                BOOTSTRAP,
                str(self.build_dir / spec.logical_id),
                str(self._opt(spec.logical_id)),
                str(self.runtime),
                str(event_path),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"{folder}: {done.stderr[-6000:]}"
        # The answer's own line: the API's model preload may still log after an answer that did
        # not need the model (a 422).
        return json.loads(done.stdout.rsplit("SMOKE-ANSWER ", 1)[1].split("\n", 1)[0])


@pytest.fixture(scope="module")
def functions(build_dir: Path, runtime_dir: Path, tmp_path_factory) -> BuiltFunctions:
    return BuiltFunctions(build_dir, runtime_dir, tmp_path_factory.mktemp("smoke"))


# One test, so that a parallel run (pytest -n) builds and runs the pipeline on one worker only.
def test_built_functions_fit_lambda_run_the_pipeline_and_serve_it(
    functions: BuiltFunctions,
) -> None:
    """Sizes within Lambda's limits, every step chained as the state machine chains them, then
    every sample API event."""
    sizes = check_sizes.measure(functions.build_dir)
    assert sizes["ok"], json.dumps(sizes["functions"], indent=1)
    # Lambda could not write it at a cold start: the API handler ships its bytecode, valid
    # whatever mtime the zip keeps (PEP 552 flags: hash-based, source not checked).
    api_build = functions.build_dir / functions.template.function("api").logical_id
    bytecode = api_build / "__pycache__" / f"app.{sys.implementation.cache_tag}.pyc"
    assert int.from_bytes(bytecode.read_bytes()[4:8], "little") == 0b01

    # The sample backfill, with the year of history the backtest needs to fit at all.
    backfill = json.loads((EVENTS / "plan" / "sample-backfill.json").read_text())
    plan = functions.invoke("plan", {**backfill, "history_days": 400})
    collected = [functions.invoke("collect", item) for item in plan["items"]]
    assert collected and all("key" in c for c in collected), collected
    dataset = functions.invoke("preprocess", {"run": plan["run"], "collected": collected})
    trained = functions.invoke("train", dataset)
    validated = functions.invoke("validate", trained)
    assert validated["gate"]["passed"], validated["gate"]
    promoted = functions.invoke("promote", validated)
    assert promoted["version"] == plan["run"]["run_id"]

    api_events = sorted((EVENTS / "api").glob("*.json"))
    assert api_events
    for event in api_events:
        answer = functions.invoke("api", event)
        assert answer["statusCode"] < 500, (event.name, answer)
        if event.stem == "health":
            assert json.loads(answer["body"])["status"] == "ok", answer
