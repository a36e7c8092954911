"""The R2D3 learner: Adam on the sequence loss (rlstore.agents.r2d3.losses), the periodic target sync and,
online, the new priorities of the sampled sequences.

Updates run in an in-graph loop (`tf.function` over `tf.range`) pulling batches from a tf.data
iterator inside the graph, as for BC and DQfD. Priority updates stay in the graph too: the
`update_priorities` callback is given the batch and the new priorities and is expected to issue
Reverb's TF op (`reverb.TFClient.update_priorities`), so Python never sits between two updates.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import sonnet as snt
import tensorflow as tf

from rlstore.agents.r2d3.config import R2D3Config
from rlstore.agents.r2d3.losses import METRICS, r2d3_loss
from rlstore.agents.r2d3.networks import R2D3Networks
from rlstore.agents.update_loop import Metrics, mean_metrics
PriorityUpdate = Callable[[Mapping[str, Any], tf.Tensor], None]


class R2D3Learner:
    """Owns the optimizer and the update counter; `run(n)` performs n updates (rlstore.agents.registry.Learner)."""

    def __init__(self, networks: R2D3Networks, dataset: tf.data.Dataset, config: R2D3Config,
                 update_priorities: PriorityUpdate | None = None):
        self._networks = networks
        self._config = config
        self._optimizer = snt.optimizers.Adam(config.learning_rate, epsilon=config.adam_epsilon)
        self._iterator = iter(dataset)
        self._update_priorities = update_priorities
        self.steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="steps")

    def set_dataset(self, dataset: tf.data.Dataset) -> None:
        """Continues from another dataset of the same rows (online: after replay ended one)."""
        self._iterator = iter(dataset)

    def run(self, num_updates: int) -> dict[str, float]:
        """Performs `num_updates` updates on batches from the dataset; returns their mean metrics."""
        metrics = self._run(self._iterator, tf.constant(num_updates, tf.int64))
        return {name: float(value) for name, value in metrics.items()}

    def checkpoint_objects(self) -> dict[str, tf.Module | tf.Variable]:
        return {"network": self._networks, "optimizer": self._optimizer, "steps": self.steps}

    @tf.function
    def _run(self, iterator: Any, num_updates: tf.Tensor) -> Metrics:
        return mean_metrics(lambda: self._update(next(iterator)), num_updates, METRICS)

    def _update(self, batch: Mapping[str, Any]) -> Metrics:
        variables = self._networks.online.trainable_variables
        with tf.GradientTape() as tape:
            output = r2d3_loss(self._networks, batch, self._config)
        self._optimizer.apply(tape.gradient(output.loss, variables), variables)
        if self._update_priorities is not None:
            self._update_priorities(batch, output.priorities)
        self.steps.assign_add(1)
        if self.steps % self._config.target_update_period == 0:
            self._networks.update_target()
        return output.metrics
