"""Stand-in for `pyarrow` in the Lambda ML layer: unpacks the real package into /tmp when imported.

A function with all its layers gets 250 MiB unzipped, and pyarrow's ~80 MB of shared libraries
push the training function (pandas, pyarrow, scipy, scikit-learn, skops and the pokewatch layer)
over it; deflated, pyarrow is a third of that. Unpacking costs about a second once per execution
environment: /tmp outlives invocations, so warm starts import straight from the unpacked copy.
The layer Makefile installs this file as `pyarrow/__init__.py` next to `pyarrow.zip`.
"""

import importlib
import os
import shutil
import sys
import tempfile
import zipfile

_ARCHIVE = os.path.join(os.path.dirname(__file__), "pyarrow.zip")


def _unpacked_root() -> str:
    """A directory holding the real `pyarrow/`, unpacked once per archive (keyed by its size and
    time, so a new layer version never reuses an old copy)."""
    stat = os.stat(_ARCHIVE)
    root = os.path.join(tempfile.gettempdir(), f"pyarrow-{stat.st_size}-{int(stat.st_mtime)}")
    if not os.path.isdir(root):
        # Unpack beside the target and rename: a concurrent import never sees half a package.
        staging = tempfile.mkdtemp(dir=tempfile.gettempdir(), prefix="pyarrow-unpacking-")
        with zipfile.ZipFile(_ARCHIVE) as archive:
            archive.extractall(staging)
        try:
            os.rename(staging, root)
        except OSError:  # another process unpacked it first
            shutil.rmtree(staging, ignore_errors=True)
    return root


def _import_real_pyarrow() -> None:
    root = _unpacked_root()
    sys.path.insert(0, root)
    try:
        # The import system hands the importer whatever sys.modules holds once this module has
        # run, so the real package replaces this stand-in for `import pyarrow` and its submodules.
        del sys.modules[__name__]
        importlib.import_module(__name__)
    finally:
        sys.path.remove(root)


_import_real_pyarrow()
