"""The local runtime reads the real template.yaml and statemachine/pipeline.asl.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pokewatch_local.asl import StateMachine
from pokewatch_local.runner import LAMBDA_INVOKE, SNS_PUBLISH
from pokewatch_local.template import Route, SamTemplate, TemplateError


@pytest.fixture(scope="module")
def template(repo: Path) -> SamTemplate:
    return SamTemplate(repo / "template.yaml")


def _tasks(states: dict) -> list[dict]:
    found = []
    for state in states.values():
        if state["Type"] == "Task":
            found.append(state)
        if state["Type"] == "Map":
            found.extend(_tasks(state["ItemProcessor"]["States"]))
    return found


def test_every_function_folder_is_in_the_template(template: SamTemplate, repo: Path) -> None:
    folders = {p.name for p in (repo / "functions").iterdir() if (p / "app.py").is_file()}
    assert {spec.folder for spec in template.functions.values()} == folders
    for spec in template.functions.values():
        assert spec.handler == "app.lambda_handler"
        assert (spec.code_dir / "app.py").is_file()


def test_substitutions_resolve_to_template_functions(template: SamTemplate) -> None:
    definition = template.state_machine()
    assert "${" not in json.dumps(definition)
    tasks = _tasks(definition["States"])
    resources = {t["Resource"] for t in tasks}
    assert resources <= {LAMBDA_INVOKE, SNS_PUBLISH}
    invoked = {
        template.function_by_arn(t["Parameters"]["FunctionName"]).folder
        for t in tasks
        if t["Resource"] == LAMBDA_INVOKE
    }
    assert invoked == {"plan", "collect", "preprocess", "train", "validate", "promote"}


def test_the_definition_passes_the_interpreters_validation(template: SamTemplate) -> None:
    StateMachine(template.state_machine(), lambda *_: None)


def test_routes_are_the_api_of_the_spec(template: SamTemplate) -> None:
    routes = {(r.method, r.path) for r in template.routes()}
    assert routes == {
        ("GET", "/health"),
        ("GET", "/cards"),
        ("GET", "/cards/{card_id}"),
        ("POST", "/predict"),
        ("POST", "/predict/batch"),
        ("GET", "/openapi.json"),
        ("GET", "/swagger"),
    }


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/cards/base1-4_holofoil", {"card_id": "base1-4_holofoil"}),
        ("GET", "/cards/", None),
        ("GET", "/cards/a/b", None),
        ("POST", "/cards/x", None),
    ],
)
def test_route_matching(method: str, path: str, expected: dict | None) -> None:
    assert Route("GET", "/cards/{card_id}", "ApiFunction").match(method, path) == expected


def test_unknown_function_names_the_known_ones(template: SamTemplate) -> None:
    with pytest.raises(TemplateError, match="known: api, collect"):
        template.function("nope")
