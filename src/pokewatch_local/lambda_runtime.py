"""Runs a function's handler in this process, as Lambda would: its code folder on the path, its
environment set, a Lambda-like context, and the module loaded once (warm) per runtime."""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from pokewatch_local.template import FunctionSpec, SamTemplate

#: Locally, Powertools must not print metrics or try to reach X-Ray.
LOCAL_ENVIRONMENT = {
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_DEV": "false",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
}


@dataclass
class LocalContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    timeout_seconds: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = "local"
    log_stream_name: str = "local"
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's timeout."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LocalLambda:
    """Loads and invokes the handlers of a template's functions in process."""

    def __init__(self, template: SamTemplate, environment: dict[str, str] | None = None) -> None:
        self.template = template
        self.environment = {**LOCAL_ENVIRONMENT, **(environment or {})}
        self._modules: dict[str, ModuleType] = {}
        self._saved: dict[str, str | None] = {}
        self._lock = threading.RLock()

    def invoke(self, function: str | FunctionSpec, event: Any) -> Any:
        """Call the function's handler with `event` and a fresh context; exceptions propagate
        (their class name is the error name Step Functions sees, as with a Python Lambda)."""
        spec = function if isinstance(function, FunctionSpec) else self.template.function(function)
        self._apply_environment(spec)
        handler = self._handler(spec)
        context = LocalContext(
            function_name=spec.logical_id,
            memory_limit_in_mb=spec.memory_mb,
            invoked_function_arn=spec.arn,
            timeout_seconds=spec.timeout,
        )
        return handler(event, context)

    def _handler(self, spec: FunctionSpec) -> Any:
        module_name, _, attribute = spec.handler.rpartition(".")
        with self._lock:
            module = self._modules.get(spec.logical_id) or self._load(spec, module_name)
        return getattr(module, attribute)

    def _load(self, spec: FunctionSpec, module_name: str) -> ModuleType:
        path = spec.code_dir / f"{module_name.replace('.', '/')}.py"
        if not path.is_file():
            raise FileNotFoundError(f"handler module of {spec.logical_id} not found: {path}")
        # A unique module name: every function's module is called `app`.
        unique = f"pokewatch_local_fn_{spec.logical_id}_{id(self)}"
        loader_spec = importlib.util.spec_from_file_location(unique, path)
        assert loader_spec and loader_spec.loader
        module = importlib.util.module_from_spec(loader_spec)
        sys.path.insert(0, str(spec.code_dir))
        try:
            loader_spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(spec.code_dir))
        self._modules[spec.logical_id] = module
        return module

    def _apply_environment(self, spec: FunctionSpec) -> None:
        """Set the function's environment in this process. It stays set (handlers may read it at
        any time, from any server thread) until `restore_environment`."""
        from pokewatch.settings import get_settings

        wanted = {
            **{k: v for k, v in spec.environment.items() if k not in self.environment},
            **self.environment,
            "AWS_LAMBDA_FUNCTION_NAME": spec.logical_id,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        }
        with self._lock:
            if all(os.environ.get(k) == v for k, v in wanted.items()):
                return
            for key in wanted:
                self._saved.setdefault(key, os.environ.get(key))
            os.environ.update(wanted)
            get_settings.cache_clear()

    def restore_environment(self) -> None:
        """Put back the environment this runtime changed."""
        from pokewatch.settings import get_settings

        with self._lock:
            for key, value in self._saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            self._saved.clear()
            get_settings.cache_clear()
