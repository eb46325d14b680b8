"""The stand-in of a packed package of the ML layer (layers/ml/packed_package.py)."""

from __future__ import annotations

import importlib
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

STAND_IN = Path(__file__).resolve().parents[1] / "layers" / "ml" / "packed_package.py"
NAME = "pokewatch_packed_probe"


@pytest.fixture
def layer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A layer folder holding the stand-in for package NAME, and /tmp redirected to a folder
    of the test's own; NAME is forgotten afterwards."""
    site, scratch = tmp_path / "site", tmp_path / "tmp"
    (site / NAME).mkdir(parents=True)
    scratch.mkdir()
    shutil.copy(STAND_IN, site / NAME / "__init__.py")
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.syspath_prepend(str(site))
    yield site
    for module in [m for m in sys.modules if m == NAME or m.startswith(f"{NAME}.")]:
        del sys.modules[module]


def test_the_real_package_is_unpacked_once_and_imported(layer: Path) -> None:
    with zipfile.ZipFile(layer / NAME / f"{NAME}.zip", "w") as archive:
        archive.writestr(f"{NAME}/__init__.py", "REAL = True\n")
    assert importlib.import_module(NAME).REAL is True
    assert [p.name.split("-")[0] for p in Path(tempfile.gettempdir()).iterdir()] == [NAME]


def test_an_archive_that_cannot_be_unpacked_leaves_nothing_in_tmp(layer: Path) -> None:
    # Its staging folder was left behind: in Lambda /tmp outlives a failed start, and each
    # retried start of the environment left another partial copy in its 512 MB.
    (layer / NAME / f"{NAME}.zip").write_bytes(b"not a zip archive")
    with pytest.raises(zipfile.BadZipFile):
        importlib.import_module(NAME)
    assert list(Path(tempfile.gettempdir()).iterdir()) == []
