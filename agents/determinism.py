"""Bitwise-repeatable batch training: the switches that make two runs with the same seed and
the same dataset version produce identical weights, and the record of them a run keeps.

Three things vary between otherwise equal runs:
- random initial weights and random ops: the global TF seed (`tf.random.set_seed`) fixes every
  op seed derived from it, and NumPy's global seed covers NumPy draws;
- the data order: the readers' shuffles are seeded from the same seed (rlstore.reading);
- the order in which multi-threaded kernels add floating-point numbers: TensorFlow's op
  determinism (`tf.config.experimental.enable_op_determinism`) selects deterministic kernels
  and makes every tf.data stage keep its order.
Op determinism is process-wide in TensorFlow; `deterministic_ops` turns it on for one training
session and restores the previous setting afterwards, so a library caller's other work (an
online run in the same process) is not switched over behind its back.
"""
from __future__ import annotations

import contextlib
import os
import platform
from typing import Any, Iterator

import numpy as np
import tensorflow as tf
from tensorflow.python.framework import config as tf_config


@contextlib.contextmanager
def deterministic_ops(seed: int) -> Iterator[None]:
    """Seeds TF and NumPy with `seed` and runs the block with TensorFlow's op determinism on."""
    was_enabled = tf_config.is_op_determinism_enabled()
    tf.config.experimental.enable_op_determinism()
    tf.random.set_seed(seed)
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        if not was_enabled:
            tf_config.disable_op_determinism()


def repeatability(seed: int) -> dict[str, Any]:
    """What a run manifest records so a session can be repeated bit for bit: the seeds, the switch,
    and the software and hardware the bits depend on (another TF build or CPU may round differently)."""
    return {"op_determinism": True, "tf_global_seed": seed, "numpy_seed": seed % 2**32, "data_order_seed": seed,
            "tensorflow": tf.__version__, "numpy": np.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "tf_threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                           "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}}
