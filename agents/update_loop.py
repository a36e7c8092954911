"""The in-graph update loop every learner runs: n updates inside one `tf.function` call.

Looping over `tf.range` in the graph (rather than calling a traced update from Python n times)
means Python never sits between two updates, which is most of a small network's update time.
Call `mean_metrics` from inside the learner's own `tf.function`.
"""
from __future__ import annotations

from typing import Callable, Sequence

import tensorflow as tf

Metrics = dict[str, tf.Tensor]


def mean_metrics(update: Callable[[], Metrics], num_updates: tf.Tensor, names: Sequence[str]) -> Metrics:
    """Runs `update()` `num_updates` times; returns the mean of each named scalar metric."""
    totals = {name: tf.constant(0.0) for name in names}
    for _ in tf.range(num_updates):
        metrics = update()
        totals = {name: totals[name] + tf.cast(metrics[name], tf.float32) for name in names}
    return {name: total / tf.cast(num_updates, tf.float32) for name, total in totals.items()}
