"""The environment of the Python processes rlstore starts (write-back worker, online-run parts).

A child runs `python -m rlstore....`, so it must import the same rlstore as its parent, even
from a source checkout that is not installed: the directory holding the `rlstore` package goes
first on its PYTHONPATH.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import rlstore

PACKAGE_PARENT = str(Path(rlstore.__file__).resolve().parent.parent)


def child_environment(**extra: str) -> dict[str, str]:
    """This process's environment, with rlstore importable and `extra` variables added."""
    path = os.pathsep.join(filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **extra}


def exit_now(status: int) -> None:
    """Flushes stdout and stderr and ends the process with `status` at once.

    Skips TensorFlow's interpreter-shutdown hooks, which take seconds and can print noise; used
    by the CLI and by every process rlstore starts.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
