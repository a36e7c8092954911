"""The BC learner: losses and the update step.

Updates run in an in-graph loop (`tf.function` over `tf.range`) that pulls each batch from a
tf.data iterator inside the graph, so Python never sits between two updates and the input
pipeline prefetches in its own threads while the loop computes: the learner is never starved
by input. One call runs many updates and returns their mean metrics.

Each episode's last step (`is_last`) carries the final observation with a zero-filled action,
not a real decision, so it is masked out of every loss.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import numpy as np
import sonnet as snt
import tensorflow as tf

from rlstore.agents.bc.config import BCConfig
from rlstore.agents.networks import PolicyNetwork
from rlstore.agents.update_loop import Metrics, mean_metrics
from rlstore.agents.specs import ActionSpec

Batch = Mapping[str, Any]
LossFn = Callable[[dict[str, tf.Tensor], tf.Tensor, tf.Tensor], Metrics]


def masked_mean(values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Mean of `values` over the rows where `mask` is 1 (0 when no row counts)."""
    return tf.reduce_sum(values * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def cross_entropy_loss(outputs: dict[str, tf.Tensor], actions: tf.Tensor, mask: tf.Tensor) -> Metrics:
    """Discrete actions: cross-entropy of the logged action under the policy's logits."""
    logits = outputs["logits"]
    actions = tf.cast(actions, tf.int32)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=actions, logits=logits)
    correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), actions), tf.float32)
    return {"loss": masked_mean(loss, mask), "accuracy": masked_mean(correct, mask)}


def mse_loss(outputs: dict[str, tf.Tensor], actions: tf.Tensor, mask: tf.Tensor) -> Metrics:
    """Continuous actions: squared error of the predicted mean, averaged over action dimensions."""
    error = tf.square(outputs["mean"] - tf.cast(actions, tf.float32))
    return {"loss": masked_mean(_per_row(tf.reduce_mean, error), mask)}


def gaussian_nll_loss(outputs: dict[str, tf.Tensor], actions: tf.Tensor, mask: tf.Tensor) -> Metrics:
    """Continuous actions: negative log-likelihood under a diagonal Gaussian (learned std)."""
    mean, log_std = outputs["mean"], outputs["log_std"]
    z = (tf.cast(actions, tf.float32) - mean) * tf.exp(-log_std)
    nll = 0.5 * tf.square(z) + log_std + 0.5 * np.log(2.0 * np.pi)
    mse = _per_row(tf.reduce_mean, tf.square(mean - tf.cast(actions, tf.float32)))
    return {"loss": masked_mean(_per_row(tf.reduce_sum, nll), mask), "mse": masked_mean(mse, mask)}


@dataclasses.dataclass(frozen=True)
class Loss:
    """A loss function and the names of the metrics it returns (the in-graph loop sums them)."""

    fn: LossFn
    metrics: tuple[str, ...]


CROSS_ENTROPY = Loss(cross_entropy_loss, ("loss", "accuracy"))
MSE = Loss(mse_loss, ("loss",))
GAUSSIAN_NLL = Loss(gaussian_nll_loss, ("loss", "mse"))


def loss_for(action_spec: ActionSpec, config: BCConfig) -> Loss:
    if action_spec.discrete:
        return CROSS_ENTROPY
    return GAUSSIAN_NLL if config.continuous_loss == "gaussian_nll" else MSE


def _per_row(reduce, values: tf.Tensor) -> tf.Tensor:
    """Reduces every axis but the batch axis."""
    return reduce(tf.reshape(values, (tf.shape(values)[0], -1)), axis=-1)


class BCLearner:
    """Owns the network's optimizer and the update counter; `run(n)` performs n updates."""

    def __init__(self, network: PolicyNetwork, dataset: tf.data.Dataset, action_spec: ActionSpec, config: BCConfig):
        self._network = network
        self._optimizer = snt.optimizers.Adam(config.learning_rate)
        self._loss = loss_for(action_spec, config)
        self._iterator = iter(dataset)
        self.steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="steps")

    def run(self, num_updates: int) -> dict[str, float]:
        """Performs `num_updates` updates on batches from the dataset; returns their mean metrics."""
        metrics = self._run_from_iterator(self._iterator, tf.constant(num_updates, tf.int64))
        return {name: float(value) for name, value in metrics.items()}

    def run_on_batch(self, batch: Batch, num_updates: int) -> dict[str, float]:
        """The same updates on one fixed batch: the data-free ceiling that benchmarks compare against."""
        metrics = self._run_on_constant(batch, tf.constant(num_updates, tf.int64))
        return {name: float(value) for name, value in metrics.items()}

    def checkpoint_objects(self) -> dict[str, tf.Module | tf.Variable]:
        return {"network": self._network, "optimizer": self._optimizer, "steps": self.steps}

    @tf.function
    def _run_from_iterator(self, iterator, num_updates: tf.Tensor) -> Metrics:
        return mean_metrics(lambda: self._update(next(iterator)), num_updates, self._loss.metrics)

    @tf.function
    def _run_on_constant(self, batch: Batch, num_updates: tf.Tensor) -> Metrics:
        return mean_metrics(lambda: self._update(batch), num_updates, self._loss.metrics)

    def _update(self, batch: Batch) -> Metrics:
        mask = 1.0 - tf.cast(batch["is_last"], tf.float32)
        variables = self._network.trainable_variables
        with tf.GradientTape() as tape:
            metrics = self._loss.fn(self._network(batch["observation"]), batch["action"], mask)
        gradients = tape.gradient(metrics["loss"], variables)
        self._optimizer.apply(gradients, variables)
        self.steps.assign_add(1)
        return metrics

