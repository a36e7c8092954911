"""Keeps TensorFlow, absl and Beam from flooding a terminal, for entry points that own one.

Nothing happens on import: the library never changes a user's environment variables, warning
filters or loggers. Programs call `silence()` first thing (the CLI, the processes an online run
starts, the benchmarks, the test session); the environment variables only take effect if they
are set before the first TensorFlow import.
"""
import logging
import os
import warnings

# gRPC's own errors are internal (a poller racing the shutdown of Beam's job service prints
# "epoll_wait error: Bad file descriptor" after a failed ingest); what matters reaches Python.
_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "NONE", "AUTOGRAPH_VERBOSITY": "0"}


class _DropNoise(logging.Filter):
    """Drops Beam's import-time warning about optional Google Cloud clients we never use."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "apitools not found" not in record.getMessage()


def silence() -> None:
    """Quiets TF's C++ logs, gRPC, AutoGraph, deprecation chatter and dependency loggers.

    Safe to call repeatedly; variables the user has already set are left as they are.
    """
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
