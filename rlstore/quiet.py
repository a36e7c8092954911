"""Keeps TensorFlow, absl and Beam from flooding a terminal, for entry points that own one.

Nothing happens on import: the library never changes a user's environment variables, warning
filters or loggers. Programs call `silence()` first thing (the CLI, the processes an online run
starts, the benchmarks, the test session); the environment variables only take effect if they
are set before the first TensorFlow import.
"""
import contextlib
import logging
import os
import sys
import tempfile
import threading
import warnings
from typing import Iterator

# gRPC's own errors are internal (a poller racing the shutdown of Beam's job service prints
# "epoll_wait error: Bad file descriptor" after a failed ingest); what matters reaches Python.
_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "NONE", "AUTOGRAPH_VERBOSITY": "0"}


# TensorFlow's first XLA compilation in a process logs these through its own copy of absl's C++
# logging, which no environment variable or Python logger reaches.
XLA_BANNER = ("Compiled cluster using XLA!", "All log messages before absl::InitializeLog() is called")

_silenced = False
_stderr_lock = threading.Lock()


class _DropNoise(logging.Filter):
    """Drops Beam's import-time warning about optional Google Cloud clients we never use."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "apitools not found" not in record.getMessage()


def silence() -> None:
    """Quiets TF's C++ logs, gRPC, AutoGraph, deprecation chatter and dependency loggers.

    Safe to call repeatedly; variables the user has already set are left as they are. Also
    lets library code that compiles with XLA drop TensorFlow's banner (`silenced`).
    """
    global _silenced
    _silenced = True
    for name, value in _ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="apache_beam")
    warnings.filterwarnings("ignore", category=FutureWarning)
    root = logging.getLogger()
    if not any(isinstance(f, _DropNoise) for f in root.filters):
        root.addFilter(_DropNoise())
    for name in ("absl", "apache_beam", "tensorflow", "tensorflow_datasets", "distributed"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass


def silenced() -> bool:
    """Whether this process's entry point asked for quiet (`silence()`)."""
    return _silenced


@contextlib.contextmanager
def stderr_without(lines: tuple[str, ...]) -> Iterator[None]:
    """Holds back what is written to file descriptor 2 (by any thread, Python or C++) while the
    block runs, then writes it out again without the lines that contain one of `lines`.

    For C++ logs that cannot be turned off any other way; keep the block short, since other
    threads' errors are delayed (never lost) until it ends.
    """
    with _stderr_lock, tempfile.TemporaryFile() as held:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held.read().splitlines(keepends=True)
                    if not any(text.encode() in line for text in lines)]
            if kept:
                os.write(2, b"".join(kept))
