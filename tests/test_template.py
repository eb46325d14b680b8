"""What a review of template.yaml checks: parameters, least privilege, bucket security, alarms,
logs, outputs; and both linters (sam validate --lint, cfn-lint with the serverless rules)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cfn_tools import load_yaml

from pokewatch.sources.registry import SOURCE_NAMES

ROOT = Path(__file__).resolve().parents[1]
SAM_BIN = ROOT / ".venv-sam" / "bin"
TEMPLATE = load_yaml((ROOT / "template.yaml").read_text())
RESOURCES = TEMPLATE["Resources"]
FUNCTIONS = {k: r for k, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::Function"}
PIPELINE = ["Plan", "Collect", "Preprocess", "Train", "Validate", "Promote"]

#: The store prefixes each function may touch, by action (SPEC section 3).
S3_ACCESS = {
    "PlanFunction": {"s3:ListBucket": {"raw/"}},
    "CollectFunction": {"s3:PutObject": {"raw/"}},
    "PreprocessFunction": {
        "s3:ListBucket": {"raw/"},
        "s3:GetObject": {"raw/"},
        "s3:PutObject": {"features/"},
    },
    "TrainFunction": {
        "s3:ListBucket": {"features/"},
        "s3:GetObject": {"features/"},
        "s3:PutObject": {"models/"},
    },
    "ValidateFunction": {
        "s3:ListBucket": {"models/"},
        "s3:GetObject": {"models/"},
        "s3:PutObject": {"models/"},
    },
    "PromoteFunction": {
        "s3:ListBucket": {"models/"},
        "s3:GetObject": {"models/"},
        "s3:PutObject": {"models/"},
    },
    "ApiFunction": {"s3:ListBucket": {"models/"}, "s3:GetObject": {"models/"}},
}


def _statements(function: str) -> list[dict]:
    policies = FUNCTIONS[function]["Properties"].get("Policies", [])
    return [s for p in policies if isinstance(p, dict) for s in p.get("Statement", [])]


def _as_list(value: object) -> list:
    return value if isinstance(value, list) else [value]


def _s3_prefix(statement: dict) -> str:
    """`raw/` for `${ArtifactBucket.Arn}/raw/*`, or the ListBucket condition's prefix."""
    if statement["Action"] == "s3:ListBucket" or statement["Action"] == ["s3:ListBucket"]:
        assert statement["Resource"] == {"Fn::GetAtt": ["ArtifactBucket", "Arn"]}
        return statement["Condition"]["StringLike"]["s3:prefix"].removesuffix("*")
    resource = statement["Resource"]["Fn::Sub"]
    assert resource.startswith("${ArtifactBucket.Arn}/") and resource.endswith("/*"), resource
    return resource.removeprefix("${ArtifactBucket.Arn}/").removesuffix("*")


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
    granted: dict[str, set[str]] = {}
    for statement in _statements(function):
        assert statement["Effect"] == "Allow"
        actions = _as_list(statement["Action"])
        assert all("*" not in action for action in actions), actions
        for action in (a for a in actions if a.startswith("s3:")):
            granted.setdefault(action, set()).add(_s3_prefix(statement))
    assert granted == S3_ACCESS[function]


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
