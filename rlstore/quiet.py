"""Keeps TensorFlow, absl and Beam from flooding the terminal.

Imported before TensorFlow by every entry point; the environment variables only take effect if
they are set before the first TF import.
"""
import logging
import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
os.environ.setdefault("AUTOGRAPH_VERBOSITY", "0")
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=UserWarning, module="apache_beam")
warnings.filterwarnings("ignore", category=FutureWarning)


class _DropNoise(logging.Filter):
    """Drops Beam's import-time warning about optional Google Cloud clients we never use."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "apitools not found" not in record.getMessage()


def silence_loggers() -> None:
    """Turns down the Python loggers of our dependencies (safe to call repeatedly)."""
    logging.getLogger().addFilter(_DropNoise())
    for name in ("absl", "apache_beam", "tensorflow", "tensorflow_datasets", "distributed"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass


silence_loggers()
