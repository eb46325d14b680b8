"""Stand-in for a packed package of the Lambda ML layer: unpacks the real one into /tmp on import.

A function with all its layers gets 250 MiB unzipped, and the training function (pandas,
pyarrow, scipy, scikit-learn, skops and the pokewatch layer) is above it; deflated, pyarrow and
pandas take a third of their size. Unpacking costs about a second once per execution
environment: /tmp outlives invocations, so warm starts import straight from the unpacked copy.
The layer Makefile installs this file as `<package>/__init__.py` next to `<package>.zip`; only
packages that find their files relative to themselves (no sibling `<name>.libs`) can be packed.
"""

import importlib
import os
import shutil
import sys
import tempfile
import zipfile

_ARCHIVE = os.path.join(os.path.dirname(__file__), f"{__name__}.zip")


def _unpacked_root() -> str:
    """A directory holding the real package, unpacked once per archive (keyed by its size and
    time, so a new layer version never reuses an old copy)."""
    stat = os.stat(_ARCHIVE)
    root = os.path.join(tempfile.gettempdir(), f"{__name__}-{stat.st_size}-{int(stat.st_mtime)}")
    if not os.path.isdir(root):
        # Unpack beside the target and rename: a concurrent import never sees half a package.
        staging = tempfile.mkdtemp(dir=tempfile.gettempdir(), prefix=f"{__name__}-unpacking-")
        try:
            with zipfile.ZipFile(_ARCHIVE) as archive:
                archive.extractall(staging)
            os.rename(staging, root)
        except OSError:
            if not os.path.isdir(root):
                raise  # not another process that unpacked it first: the unpacking failed
        finally:
            # Nothing is left behind: /tmp outlives a failed start of the environment.
            shutil.rmtree(staging, ignore_errors=True)
    return root


def _import_real_package() -> None:
    root = _unpacked_root()
    sys.path.insert(0, root)
    try:
        # The import system hands the importer whatever sys.modules holds once this module has
        # run, so the real package replaces this stand-in for `import pyarrow` and its submodules.
        del sys.modules[__name__]
        importlib.import_module(__name__)
    finally:
        sys.path.remove(root)


_import_real_package()
