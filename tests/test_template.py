"""What a review of template.yaml checks: parameters, least privilege, bucket security, alarms,
logs, outputs; and both linters (sam validate --lint, cfn-lint with the serverless rules)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from cfn_tools import load_yaml
from market_fixtures import OPEN_GATE

from pokewatch import keys, registry
from pokewatch.settings import Settings
from pokewatch.sources.registry import SOURCE_NAMES
from pokewatch.store import LocalStore
from pokewatch_local.lambda_runtime import LocalLambda
from pokewatch_local.runner import run_pipeline
from pokewatch_local.template import SamTemplate

ROOT = Path(__file__).resolve().parents[1]
SAM_BIN = ROOT / ".venv-sam" / "bin"
TEMPLATE = load_yaml((ROOT / "template.yaml").read_text())
RESOURCES = TEMPLATE["Resources"]
FUNCTIONS = {k: r for k, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::Function"}
PIPELINE = ["Plan", "Collect", "Preprocess", "Train", "Validate", "Promote"]

#: The store keys each function may touch, by action, as IAM patterns (SPEC section 3):
#: `${ArtifactBucket.Arn}/<pattern>` resources, or the `s3:prefix` condition of ListBucket.
MODEL_FILES = {f"models/*/{name}" for name in ("model.skops", "metrics.json", "serving.bin")}
S3_ACCESS = {
    "PlanFunction": {"s3:ListBucket": {"raw/*"}},
    "CollectFunction": {"s3:PutObject": {"raw/*"}},
    "PreprocessFunction": {
        "s3:ListBucket": {"raw/*"},
        "s3:GetObject": {"raw/*"},
        "s3:PutObject": {"features/*"},
    },
    "TrainFunction": {
        "s3:ListBucket": {"features/*"},
        "s3:GetObject": {"features/*"},
        "s3:PutObject": MODEL_FILES | {"models/*/report.html"},
    },
    "ValidateFunction": {
        "s3:ListBucket": {"models/*"},
        "s3:GetObject": {"models/*"},
        "s3:PutObject": {"models/*/metrics.json"},
    },
    "PromoteFunction": {
        "s3:ListBucket": {"models/*"},
        "s3:GetObject": {"models/*"},
        "s3:PutObject": {"models/current.json", "models/promotions.json"},
    },
    "ApiFunction": {"s3:ListBucket": {"models/*"}, "s3:GetObject": {"models/*"}},
}
#: The registry's own keys: the pointer to the model in service and the promotion log.
REGISTRY_KEYS = (keys.CURRENT_MODEL, registry.PROMOTION_LOG)


def _statements(function: str) -> list[dict]:
    policies = FUNCTIONS[function]["Properties"].get("Policies", [])
    return [s for p in policies if isinstance(p, dict) for s in p.get("Statement", [])]


def _as_list(value: object) -> list:
    return value if isinstance(value, list) else [value]


def _s3_patterns(statement: dict) -> list[str]:
    """`raw/*` for `${ArtifactBucket.Arn}/raw/*`, or the ListBucket condition's prefix."""
    if statement["Action"] == "s3:ListBucket" or statement["Action"] == ["s3:ListBucket"]:
        assert statement["Resource"] == {"Fn::GetAtt": ["ArtifactBucket", "Arn"]}
        return [statement["Condition"]["StringLike"]["s3:prefix"]]
    patterns = []
    for resource in _as_list(statement["Resource"]):
        arn = resource["Fn::Sub"]
        assert arn.startswith("${ArtifactBucket.Arn}/"), arn
        patterns.append(arn.removeprefix("${ArtifactBucket.Arn}/"))
    return patterns


def s3_grants(function: str) -> dict[str, set[str]]:
    """The store key patterns a function's policy allows, by S3 action."""
    granted: dict[str, set[str]] = {}
    for statement in _statements(function):
        for action in (a for a in _as_list(statement["Action"]) if a.startswith("s3:")):
            granted.setdefault(action, set()).update(_s3_patterns(statement))
    return granted


def iam_match(pattern: str, key: str) -> bool:
    """IAM's wildcard match: `*` any run of characters (`/` included), `?` any one."""
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, key) is not None


def test_parameters_of_the_issue():
    params = TEMPLATE["Parameters"]
    for name in [
        "Environment",
        "ScheduleExpression",
        "ScheduleEnabled",
        "PriceSource",
        "CollectSets",
        "ApiKeyParameterName",
        "AlertEmail",
        "Architecture",
    ]:
        assert name in params
    assert params["Architecture"]["Default"] == "arm64"


def test_the_deployable_sources_are_the_ones_a_lambda_can_reach():
    """`csv` reads a file on the local disk (POKEWATCH_CSV_INPUT or the run's `input`), which
    nothing in the stack sets or ships: a scheduled run with it would fail in Plan."""
    source = TEMPLATE["Parameters"]["PriceSource"]
    assert source["AllowedValues"] == [n for n in SOURCE_NAMES if n != "csv"]
    assert source["Default"] in source["AllowedValues"]
    schedule = RESOURCES["PipelineStateMachine"]["Properties"]["Events"]["Daily"]["Properties"]
    assert "input" not in json.loads(schedule["Input"]["Fn::Sub"].replace("${PriceSource}", "x"))
    assert all(
        "POKEWATCH_CSV_INPUT" not in f["Properties"].get("Environment", {}).get("Variables", {})
        for f in FUNCTIONS.values()
    )
    assert "POKEWATCH_CSV_INPUT" not in TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]


def test_globals_and_powertools_environment():
    globals_ = TEMPLATE["Globals"]["Function"]
    assert globals_["Runtime"] == "python3.13"
    assert globals_["Tracing"] == "Active"
    assert {"Timeout", "MemorySize", "Architectures"} <= set(globals_)
    variables = globals_["Environment"]["Variables"]
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "PokeWatch"
    assert "POWERTOOLS_LOG_LEVEL" in variables
    services = [
        f["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
        for f in FUNCTIONS.values()
    ]
    assert len(set(services)) == len(FUNCTIONS)


#: Peak memory (MB) of the heavy steps at 10,000 card prints × 730 days (docs/scaling.md); the
#: history rows of that market and of docs/deploy.md's prod market (~20,000 prints × 730 days).
MEASURED_PEAK_MB = {"PreprocessFunction": 2490, "TrainFunction": 1700}
MEASURED_ROWS, PROD_ROWS = 7_280_000, 20_000 * 730
KB_PER_HISTORY_ROW = 0.3
#: Lambda's CPU share: one vCPU's worth per 1,769 MB (Lambda developer guide, "memory").
MB_PER_VCPU = 1769


def _memory(function: str) -> int:
    return int(
        FUNCTIONS[function]["Properties"].get(
            "MemorySize", TEMPLATE["Globals"]["Function"]["MemorySize"]
        )
    )


def test_heavy_steps_have_measured_memory_with_headroom():
    for function, peak in MEASURED_PEAK_MB.items():
        assert 1.5 * peak <= _memory(function) <= 10_240, function
    # Preprocess holds the whole history: the prod market's, by the measured slope, with 1 GB spare.
    prod_peak = (
        MEASURED_PEAK_MB["PreprocessFunction"]
        + (PROD_ROWS - MEASURED_ROWS) * KB_PER_HISTORY_ROW / 1024
    )
    assert _memory("PreprocessFunction") >= prod_peak + 1024
    # Train fits its refits on `model_fit_workers` threads: a full vCPU for each.
    workers = Settings.model_fields["model_fit_workers"].default
    assert _memory("TrainFunction") >= workers * MB_PER_VCPU


def test_outputs():
    assert {"ApiUrl", "ArtifactBucketName", "PipelineStateMachineArn", "ReportUrlPattern"} <= set(
        TEMPLATE["Outputs"]
    )


def test_bucket_is_private_encrypted_versioned_and_expires_old_data():
    bucket = RESOURCES["ArtifactBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    rules = bucket["LifecycleConfiguration"]["Rules"]
    assert any(r.get("Prefix") == "raw/" and "ExpirationInDays" in r for r in rules)
    assert any("NoncurrentVersionExpiration" in r for r in rules)


def test_bucket_policy_denies_plain_http():
    policy = RESOURCES["ArtifactBucketPolicy"]["Properties"]["PolicyDocument"]
    (deny,) = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Principal"] == "*"


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_function_policies_are_explicit_and_prefix_scoped(function):
    policies = FUNCTIONS[function]["Properties"].get("Policies", [])
    # SAM's S3 policy templates grant the whole bucket; only explicit statements are scoped.
    assert all(list(p) == ["Statement"] for p in policies), policies
    for statement in _statements(function):
        assert statement["Effect"] == "Allow"
        actions = _as_list(statement["Action"])
        assert all("*" not in action for action in actions), actions
    assert s3_grants(function) == S3_ACCESS[function]


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_only_promote_writes_the_registry_keys(function):
    """Train and validate write a version's files; a write of the pointer or the promotion log
    from any other function would put a model in service without the gate."""
    writable = [
        key
        for key in REGISTRY_KEYS
        if any(iam_match(p, key) for p in s3_grants(function).get("s3:PutObject", ()))
    ]
    assert writable == (list(REGISTRY_KEYS) if function == "PromoteFunction" else [])


#: The S3 action behind each store method (S3Store: HeadObject needs s3:GetObject).
STORE_ACTIONS = {
    "get_bytes": "s3:GetObject",
    "get_tagged": "s3:GetObject",
    "exists": "s3:GetObject",
    "put_bytes": "s3:PutObject",
    "put_if_unchanged": "s3:PutObject",
    "delete": "s3:DeleteObject",
    "list_keys": "s3:ListBucket",
}


class AccessRecorder:
    """Every store call a handler makes, as (function, S3 action, key or ListBucket prefix); the
    function is the one `LocalLambda.invoke` is running on this thread (None outside a handler,
    as for the local SNS stand-in's notifications)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: set[tuple[str | None, str, str]] = set()
        self._running = threading.local()
        invoke = LocalLambda.invoke

        def invoking(runtime: LocalLambda, function: Any, event: Any) -> Any:
            name = function if isinstance(function, str) else function.logical_id
            self._running.function = runtime.template.function(name).logical_id
            try:
                return invoke(runtime, function, event)
            finally:
                self._running.function = None

        monkeypatch.setattr(LocalLambda, "invoke", invoking)
        for method, action in STORE_ACTIONS.items():
            monkeypatch.setattr(LocalStore, method, self._recording(method, action))

    def _recording(self, method: str, action: str) -> Any:
        original = getattr(LocalStore, method)

        def recorded(store: LocalStore, key: str, *args: Any, **kwargs: Any) -> Any:
            self.calls.add((getattr(self._running, "function", None), action, key))
            return original(store, key, *args, **kwargs)

        return recorded


def test_the_policies_grant_every_store_access_the_real_handlers_make(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    """A sample run through the real definition and handlers, every store call recorded: each
    must be allowed by its function's policy (IAM wildcards), or it fails in AWS only."""
    recorder = AccessRecorder(monkeypatch)
    store = LocalStore(tmp_path / "store")
    environment = {"POKEWATCH_BACKTEST_DAYS": "28", **OPEN_GATE}
    request = {"source": "sample", "as_of": "2026-11-27", "cards": 40, "history_days": 200}
    for _ in range(2):  # the second run has a champion to validate against and to replace
        result = run_pipeline(
            SamTemplate(ROOT / "template.yaml"),
            store,
            request,
            environment=environment,
            echo=lambda _: None,
        )
        assert result.status == "SUCCEEDED", (result.error, result.cause)

    steps = {function for function, _, _ in recorder.calls}
    assert {f"{step}Function" for step in PIPELINE} <= steps
    denied = sorted(
        (function, action, key)
        for function, action, key in recorder.calls
        if function is not None
        and not any(iam_match(p, key) for p in s3_grants(function).get(action, ()))
    )
    assert denied == []
    outside = {key.split("/")[0] for function, _, key in recorder.calls if function is None}
    assert outside <= {"notifications"}  # the local SNS stand-in, not a Lambda
    writes = {(f, k.split("/")[-1]) for f, a, k in recorder.calls if a == "s3:PutObject"}
    assert ("PromoteFunction", "current.json") in writes
    assert ("TrainFunction", "report.html") in writes


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_only_plan_and_collect_read_the_api_key(function):
    ssm = [s for s in _statements(function) if s["Action"] == "ssm:GetParameter"]
    kms = [s for s in _statements(function) if s["Action"] == "kms:Decrypt"]
    if function not in ("PlanFunction", "CollectFunction"):
        assert ssm == kms == []
        return
    assert [s["Resource"]["Fn::Sub"] for s in ssm] == [
        "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${ApiKeyParameterName}"
    ]
    (decrypt,) = kms
    assert decrypt["Condition"]["StringEquals"]["kms:ViaService"] == {
        "Fn::Sub": "ssm.${AWS::Region}.amazonaws.com"
    }
    variables = FUNCTIONS[function]["Properties"]["Environment"]["Variables"]
    for name in (
        "POKEWATCH_POKEMONTCG_API_KEY_PARAMETER",
        "POKEWATCH_PRICETRACKER_API_KEY_PARAMETER",
    ):
        assert variables[name] == {"Ref": "ApiKeyParameterName"}


def test_state_machine_invokes_only_its_functions_and_publishes_to_its_topic():
    props = RESOURCES["PipelineStateMachine"]["Properties"]
    invoked = sorted(
        p["LambdaInvokePolicy"]["FunctionName"]["Ref"]
        for p in props["Policies"]
        if "LambdaInvokePolicy" in p
    )
    assert invoked == sorted(f"{step}Function" for step in PIPELINE)
    topics = [
        p["SNSPublishMessagePolicy"] for p in props["Policies"] if "SNSPublishMessagePolicy" in p
    ]
    assert topics == [{"TopicName": {"Fn::GetAtt": ["AlertTopic", "TopicName"]}}]
    for statement in (s for p in props["Policies"] if "Statement" in p for s in p["Statement"]):
        assert all(a.startswith("logs:") and "*" not in a for a in statement["Action"])
    assert props["Logging"]["Level"] == "ERROR"
    assert props["Logging"]["IncludeExecutionData"] is False


def test_every_function_has_a_log_group_with_retention():
    named = {
        r["Properties"]["LogGroupName"]["Fn::Sub"]: r["Properties"]
        for r in RESOURCES.values()
        if r["Type"] == "AWS::Logs::LogGroup" and "LogGroupName" in r["Properties"]
    }
    for function in FUNCTIONS:
        assert "RetentionInDays" in named[f"/aws/lambda/${{{function}}}"]


def _alarms() -> dict[str, dict]:
    return {
        k: r["Properties"] for k, r in RESOURCES.items() if r["Type"] == "AWS::CloudWatch::Alarm"
    }


def test_alarms_cover_pipeline_api_and_functions_and_notify_the_topic():
    alarms = _alarms()
    metrics = {a.get("MetricName") for a in alarms.values()}
    assert {"ExecutionsFailed", "5XXError", "Latency"} <= metrics
    function_errors = {
        m["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Ref"]
        for a in alarms.values()
        for m in a.get("Metrics", [])
        if m.get("MetricStat", {}).get("Metric", {}).get("MetricName") == "Errors"
    }
    assert function_errors == {f"{step}Function" for step in PIPELINE}
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [{"Ref": "AlertTopic"}]


def test_dashboard_shows_pipeline_api_and_custom_metrics():
    body, _ = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    for metric in ("ExecutionsFailed", "5XXError", "Latency", "Duration", "CardsPredicted"):
        assert f'"{metric}"' in body
    # The body must be JSON once substituted: fill every ${...} with a placeholder.
    json.loads(body.replace("${", "x{"))


def test_layers_are_built_by_their_makefiles():
    for layer, target in (("MlLayer", "build-MlLayer"), ("PokewatchLayer", "build-PokewatchLayer")):
        assert RESOURCES[layer]["Metadata"]["BuildMethod"] == "makefile"
        content = RESOURCES[layer]["Properties"]["ContentUri"]
        assert f"{target}:" in (ROOT / content / "Makefile").read_text()


def _sam_env() -> dict[str, str]:
    # sam validate resolves the python3.13 runtime; put the interpreter that runs us on PATH.
    path = f"{SAM_BIN}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return {**os.environ, "PATH": path, "SAM_CLI_TELEMETRY": "0"}


@pytest.mark.skipif(not (SAM_BIN / "sam").exists(), reason="no .venv-sam (make validate builds it)")
@pytest.mark.parametrize(
    "command",
    [
        ["sam", "validate", "--lint"],
        ["cfn-lint", "template.yaml", "-a", "cfn_lint_serverless.rules"],
    ],
    ids=["sam-validate-lint", "cfn-lint-serverless"],
)
def test_linters_are_clean(command):
    done = subprocess.run(
        [str(SAM_BIN / command[0]), *command[1:]],
        cwd=ROOT,
        env=_sam_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


#: cfn-lint's Step Functions schema (E3601) lacks OutputPath on a Succeed state, which the
#: language allows (States Language "Succeed State"; the CDK's SucceedProps.outputPath).
SCHEMA_GAPS = {("E3601", "Additional properties are not allowed ('OutputPath' was unexpected)")}


@pytest.mark.skipif(not (SAM_BIN / "sam").exists(), reason="no .venv-sam (make validate builds it)")
def test_the_state_machine_file_passes_cfn_lints_step_functions_schema(tmp_path: Path) -> None:
    # SAM's DefinitionUri keeps the file out of both linters above; inlined in a plain
    # AWS::StepFunctions::StateMachine, cfn-lint checks it against its own ASL schema: a second
    # reader of the file besides the local interpreter.
    machine = RESOURCES["PipelineStateMachine"]["Properties"]
    inlined = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "Pipeline": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "RoleArn": "arn:aws:iam::123456789012:role/pipeline",
                    "Definition": json.loads((ROOT / machine["DefinitionUri"]).read_text()),
                    "DefinitionSubstitutions": {
                        name: f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
                        for name in machine["DefinitionSubstitutions"]
                    },
                },
            }
        },
    }
    path = tmp_path / "state_machine.json"
    path.write_text(json.dumps(inlined, indent=1))
    done = subprocess.run(
        [str(SAM_BIN / "cfn-lint"), str(path), "--format", "json"],
        env=_sam_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    # A clean file prints `[]`: no output at all is cfn-lint failing to run, not a pass.
    assert done.stdout.strip(), done.stderr
    findings = {(f["Rule"]["Id"], f["Message"]) for f in json.loads(done.stdout)}
    assert findings - SCHEMA_GAPS == set(), done.stderr
