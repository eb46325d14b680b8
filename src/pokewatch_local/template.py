"""Reads `template.yaml` with cfn-flip's CloudFormation YAML loader and answers what the local
runtime needs: functions (code, handler, environment), the state machine with its substitutions
resolved, and the API routes."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cfn_tools import load_yaml

LOCAL_ACCOUNT = "000000000000"
LOCAL_REGION = "local"


class TemplateError(ValueError):
    """The template does not have what the local runtime needs."""


@dataclass(frozen=True)
class FunctionSpec:
    """One `AWS::Serverless::Function` as the local runtime runs it."""

    logical_id: str
    code_dir: Path
    handler: str
    #: Literal environment variables (values given by intrinsic functions are left to the caller).
    environment: dict[str, str] = field(default_factory=dict)
    timeout: int = 3
    memory_mb: int = 128

    @property
    def folder(self) -> str:
        """The folder name under `functions/` (how events/ and the CLI name a function)."""
        return self.code_dir.name

    @property
    def arn(self) -> str:
        """The ARN the local runtime gives this function."""
        return f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT}:function:{self.logical_id}"


@dataclass(frozen=True)
class Route:
    """One API event of a function: method, path template (`/cards/{card_id}`), function."""

    method: str
    path: str
    function: str

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters if `method path` is this route, else None."""
        if method.upper() != self.method.upper():
            return None
        pattern = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path)) + "$"
        found = re.match(pattern, path)
        return found.groupdict() if found else None


class SamTemplate:
    """The parts of a SAM template the local runtime uses."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()
        self.root = self.path.parent
        try:
            self._doc: dict[str, Any] = load_yaml(self.path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise TemplateError(f"cannot read {self.path}: {exc}") from exc
        self._resources: dict[str, Any] = self._doc.get("Resources", {})
        self.functions = self._functions()

    def _functions(self) -> dict[str, FunctionSpec]:
        globals_ = self._doc.get("Globals", {}).get("Function", {})
        specs = {}
        for logical_id, resource in self._resources.items():
            if resource.get("Type") != "AWS::Serverless::Function":
                continue
            props = {**globals_, **resource.get("Properties", {})}
            variables = {
                **globals_.get("Environment", {}).get("Variables", {}),
                **resource.get("Properties", {}).get("Environment", {}).get("Variables", {}),
            }
            specs[logical_id] = FunctionSpec(
                logical_id=logical_id,
                code_dir=(self.root / props["CodeUri"]).resolve(),
                handler=props["Handler"],
                environment={k: v for k, v in variables.items() if isinstance(v, str)},
                timeout=int(props.get("Timeout", 3)),
                memory_mb=int(props.get("MemorySize", 128)),
            )
        return specs

    def function(self, name: str) -> FunctionSpec:
        """A function by logical id (`CollectFunction`) or folder name (`collect`)."""
        for spec in self.functions.values():
            if name in (spec.logical_id, spec.folder):
                return spec
        known = ", ".join(sorted(s.folder for s in self.functions.values()))
        raise TemplateError(f"no function {name!r} in {self.path.name}; known: {known}")

    def state_machine(self, logical_id: str | None = None) -> dict[str, Any]:
        """The definition of the state machine, its `${...}` substitutions resolved."""
        machines = {
            k: r
            for k, r in self._resources.items()
            if r.get("Type") == "AWS::Serverless::StateMachine"
        }
        if not machines:
            raise TemplateError(f"{self.path.name} declares no AWS::Serverless::StateMachine")
        key = logical_id or next(iter(machines))
        props = machines[key]["Properties"]
        text = (self.root / props["DefinitionUri"]).read_text(encoding="utf-8")
        values = {
            name: self._resolve(value)
            for name, value in props.get("DefinitionSubstitutions", {}).items()
        }

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in values:
                raise TemplateError(f"definition uses ${{{name}}}, not in DefinitionSubstitutions")
            return values[name]

        return json.loads(re.sub(r"\$\{([A-Za-z0-9_]+)\}", substitute, text))

    def routes(self) -> list[Route]:
        """Every API event of every function."""
        found = []
        for spec in self.functions.values():
            events = self._resources[spec.logical_id]["Properties"].get("Events", {})
            for event in events.values():
                if event.get("Type") == "Api":
                    p = event["Properties"]
                    found.append(Route(p["Method"].upper(), p["Path"], spec.logical_id))
        return found

    def _resolve(self, value: Any) -> str:
        """A substitution value: a function's ARN, a topic's local ARN, or a literal."""
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            name, attribute = target if isinstance(target, list) else target.split(".", 1)
            if name in self.functions and attribute == "Arn":
                return self.functions[name].arn
            return self._local_arn(name)
        if isinstance(value, dict) and "Ref" in value:
            return self._local_arn(value["Ref"])
        raise TemplateError(f"cannot resolve substitution value {value!r} locally")

    def _local_arn(self, logical_id: str) -> str:
        if logical_id not in self._resources:
            raise TemplateError(f"substitution refers to unknown resource {logical_id!r}")
        service = self._resources[logical_id]["Type"].split("::")[1].lower()
        return f"arn:aws:{service}:{LOCAL_REGION}:{LOCAL_ACCOUNT}:{logical_id}"

    def function_by_arn(self, arn: str) -> FunctionSpec:
        """The function a local ARN (or a bare name) names."""
        for spec in self.functions.values():
            if arn in (spec.arn, spec.logical_id):
                return spec
        raise TemplateError(f"no function with ARN {arn!r}")
