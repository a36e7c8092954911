"""The BC policy: the most likely logged action under the learned network.

A TF-only module over batched observations (no numpy, no rlstore imports at call time), so the
same object drives evaluation in-process and is what `export` saves as a SavedModel.
"""
from __future__ import annotations

from typing import Any

import sonnet as snt
import tensorflow as tf

from rlstore.agents.networks import PolicyNetwork
from rlstore.agents.specs import ActionSpec


class BCPolicy(snt.Module):
    """Greedy BC policy: argmax of the logits (discrete) or the predicted mean (continuous)."""

    def __init__(self, network: PolicyNetwork, action_spec: ActionSpec, name: str = "bc_policy"):
        super().__init__(name=name)
        self._network = network
        self._discrete = action_spec.discrete
        self._dtype = tf.as_dtype(action_spec.dtype)

    def __call__(self, observation: Any) -> tf.Tensor:
        outputs = self._network(observation)
        if self._discrete:
            return tf.cast(tf.argmax(outputs["logits"], axis=-1), self._dtype)
        return tf.cast(outputs["mean"], self._dtype)
