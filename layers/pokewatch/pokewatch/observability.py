"""Tracing for every Lambda of PokeWatch: X-Ray in AWS, nothing at all elsewhere."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from aws_lambda_powertools import Tracer
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice
from aws_lambda_powertools.tracing.base import BaseProvider


class _NoSegment:
    """The trace segment of a request that is not traced."""

    def put_annotation(self, key: str, value: Any) -> None:
        """Nothing to annotate."""

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        """Nothing to record."""

    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None:
        """Nothing to record."""


class _NoTracing(BaseProvider):
    """Tracer's provider where tracing is off (locally, in tests and benchmarks). Powertools would
    otherwise import the X-Ray SDK anyway, which builds two botocore clients at import: about a
    third of this function's cold start, for traces nobody receives. In AWS the SDK is used."""

    @contextmanager
    def in_subsegment(self, name: str | None = None, **kwargs: Any) -> Iterator[Any]:
        """A segment that records nothing."""
        yield _NoSegment()

    @asynccontextmanager
    async def in_subsegment_async(self, name: str | None = None, **kwargs: Any) -> AsyncIterator:
        """A segment that records nothing."""
        yield _NoSegment()

    def put_annotation(self, key: str, value: Any) -> None:
        """Nothing to annotate."""

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        """Nothing to record."""

    def patch(self, modules: Any) -> None:
        """Nothing to patch."""

    def patch_all(self) -> None:
        """Nothing to patch."""


def _tracing_enabled() -> bool:
    """Powertools' rule: traced in Lambda, unless under SAM local or POWERTOOLS_TRACE_DISABLED."""
    disabled = resolve_truthy_env_var_choice(env=os.getenv("POWERTOOLS_TRACE_DISABLED", "false"))
    return bool(os.getenv("LAMBDA_TASK_ROOT")) and not os.getenv("AWS_SAM_LOCAL") and not disabled


def make_tracer(service: str) -> Tracer:
    """The Powertools Tracer of a function. Only botocore is patched: S3 calls are the ones worth
    a subsegment, and patching everything Powertools supports would import unused libraries."""
    return Tracer(
        service=service,
        patch_modules=("botocore",),
        provider=None if _tracing_enabled() else _NoTracing(),
    )
