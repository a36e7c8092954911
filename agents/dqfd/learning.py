"""The DQfD learner: Adam on J(Q) (rlstore.agents.dqfd.losses) and the periodic target-network sync.

As for BC, updates run in an in-graph loop (`tf.function` over `tf.range`) pulling prefetched
batches from a tf.data iterator inside the graph, so Python never sits between two updates.
The target network is synced in the same graph every `target_update_period` updates, counted
by the checkpointed `steps`, so a resumed run keeps the period's phase.
"""
from __future__ import annotations

from typing import Any, Mapping

import sonnet as snt
import tensorflow as tf

from rlstore.agents.dqfd.config import DQfDConfig
from rlstore.agents.dqfd.losses import METRICS, LossOutput, dqfd_loss
from rlstore.agents.dqfd.networks import DQfDNetworks
from rlstore.agents.update_loop import Metrics, mean_metrics


class DQfDLearner:
    """Owns the optimizer and the update counter; `run(n)` performs n updates (rlstore.agents.registry.Learner)."""

    def __init__(self, networks: DQfDNetworks, dataset: tf.data.Dataset | None, config: DQfDConfig):
        """`dataset` None: a subclass brings its own batches (rlstore.agents.dqfd.online_learning)."""
        self._networks = networks
        self._config = config
        self._optimizer = snt.optimizers.Adam(config.learning_rate)
        self._iterator = iter(dataset) if dataset is not None else None
        self.steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="steps")

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
        return self._apply(batch).metrics

    def _apply(self, batch: Mapping[str, Any]) -> LossOutput:
        """One update on `batch`: the gradient step, the step counter, the periodic target sync."""
        variables = self._networks.online.trainable_variables
        with tf.GradientTape() as tape:
            output = dqfd_loss(self._networks, batch, self._config)
        self._optimizer.apply(tape.gradient(output.loss, variables), variables)
        self.steps.assign_add(1)
        if self.steps % self._config.target_update_period == 0:
            self._networks.update_target()
        return output
