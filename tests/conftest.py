"""Fixtures shared by the whole suite: the repository's template and data, and stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

# Before any S3Store exists: the stores share one botocore session per process, and a session
# sees moto's request interception only if moto was imported before the session was made.
from moto import mock_aws

from pokewatch.store import LocalStore, S3Store

REPO = Path(__file__).resolve().parents[1]
REAL_CSV = REPO.parent / "shared" / "data" / "tcgplayer_weekly_2024.csv.gz"


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository's root folder."""
    return REPO


@pytest.fixture(scope="session")
def real_csv() -> Path:
    """The real weekly price history beside the checkout (../shared/data)."""
    assert REAL_CSV.is_file(), f"the real price history is missing: {REAL_CSV}"
    return REAL_CSV


@pytest.fixture(autouse=True)
def _no_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach AWS: fake credentials and a fixed region for boto3 and moto."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture
def local_store(tmp_path: Path) -> LocalStore:
    """An empty local artifact store."""
    return LocalStore(tmp_path / "store")


@pytest.fixture
def s3_store() -> Iterator[S3Store]:
    """An empty artifact store in a moto S3 bucket, under a prefix."""
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="pokewatch-test")
        yield S3Store("pokewatch-test", "env/dev")


@pytest.fixture(params=["local", "s3"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalStore | S3Store]:
    """Each test runs against both kinds of store: they must behave the same."""
    if request.param == "local":
        yield LocalStore(tmp_path / "store")
        return
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="pokewatch-test")
        yield S3Store("pokewatch-test", "env/dev")
