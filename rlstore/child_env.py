"""The environment of the Python processes rlstore starts (write-back worker, online-run parts).

A child runs `python -m rlstore....`, so it must import the same rlstore as its parent, even
from a source checkout that is not installed: the directory holding the `rlstore` package goes
first on its PYTHONPATH.
"""
from __future__ import annotations

import os
from pathlib import Path

import rlstore

PACKAGE_PARENT = str(Path(rlstore.__file__).resolve().parent.parent)


def child_environment(**extra: str) -> dict[str, str]:
    """This process's environment, with rlstore importable and `extra` variables added."""
    path = os.pathsep.join(filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **extra}
