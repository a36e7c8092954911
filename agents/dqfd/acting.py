"""The DQfD policy: the greedy action of the online Q-network.

A TF-only module over batched observations, so the same object drives evaluation in-process
and is what `export` saves as a SavedModel (the target network is not part of it).
"""
from __future__ import annotations

from typing import Any

import sonnet as snt
import tensorflow as tf

from agents.dqfd.networks import QNetwork
from agents.specs import ActionSpec


class GreedyPolicy(snt.Module):
    """argmax_a Q(s, a), in the dataset's action dtype."""

    def __init__(self, network: QNetwork, action_spec: ActionSpec, name: str = "dqfd_policy"):
        super().__init__(name=name)
        self._network = network
        self._dtype = tf.as_dtype(action_spec.dtype)

    def __call__(self, observation: Any) -> tf.Tensor:
        return tf.cast(tf.argmax(self._network(observation), axis=-1), self._dtype)
