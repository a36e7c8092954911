"""Ending a DirectRunner worker process without Python's finalization, once its harness is done.

In multi-processing mode the DirectRunner starts one Beam SDK worker process per worker and, at
the end of the pipeline, closes them ONE AFTER ANOTHER, each time waiting until the process has
exited (Beam 2.77, `WorkerHandlerManager.close_all`). A worker that imported Beam, NumPy and
h5py spends 0.3-1 s in Python's finalization (tearing down thousands of modules and objects)
after its harness has returned, so every worker added that to the wall clock of every ingest,
serially: 2 workers paid it twice (measured on a 2M-step D4RL ingest: 2.2 s + 2.0 s between
the last result and the pipeline's end on a loaded machine, against 0.9 s for one worker).

By then nothing of the ingest is left in the worker: every shard was closed and fsynced inside
the DoFn call that wrote it, and the result went to the driver through Beam. So a worker leaves
with `os._exit(0)` right after flushing logging and stdio. Only a process whose __main__ is
Beam's SDK worker does that (never the driver, a Dask worker or a test process), and never
after an uncaught exception (Python sets sys.last_value then; that exit keeps its status and
traceback).
"""
from __future__ import annotations

import atexit
import logging
import os
import sys

SDK_WORKER_MAIN = "apache_beam.runners.worker.sdk_worker_main"
_registered = False


def is_sdk_worker_process() -> bool:
    """Whether this process is a Beam SDK worker started as `python -m` SDK_WORKER_MAIN."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return getattr(spec, "name", None) == SDK_WORKER_MAIN


def exit_fast_after_harness() -> bool:
    """In a Beam SDK worker process, makes its exit skip Python's finalization (see the module
    docstring); returns whether it did (once per process; elsewhere a no-op)."""
    global _registered
    if _registered or not is_sdk_worker_process():
        return _registered
    atexit.register(_exit_now)  # registered after the imports' handlers, so it runs first
    _registered = True
    return True


def _exit_now() -> None:
    if getattr(sys, "last_value", None) is not None:  # an uncaught exception: exit as Python would
        return
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(0)
