"""The DQfD policies: the greedy action of the online Q-network, and the online actors' ε-greedy.

The greedy policy is a TF-only module over batched observations, so the same object drives
evaluation in-process and is what `export` saves as a SavedModel (the target network is not
part of it).
"""
from __future__ import annotations

from typing import Any

import dm_env
import numpy as np
import sonnet as snt
import tensorflow as tf

from rlstore.agents.actors import FeedForwardActor
from rlstore.agents.dqfd.networks import QNetwork
from rlstore.agents.specs import ActionSpec, DataSpecs


class GreedyPolicy(snt.Module):
    """argmax_a Q(s, a), in the dataset's action dtype."""

    def __init__(self, network: QNetwork, action_spec: ActionSpec, name: str = "dqfd_policy"):
        super().__init__(name=name)
        self._network = network
        self._dtype = tf.as_dtype(action_spec.dtype)

    def __call__(self, observation: Any) -> tf.Tensor:
        return tf.cast(tf.argmax(self._network(observation), axis=-1), self._dtype)


class EpsilonGreedyActor:
    """An online actor (rlstore.agents.online's OnlineActor): ε-greedy on the online Q-network.
    Its network's variables are overwritten with the learner's published ones; every step goes
    to `adder` (rlstore.writeback.adder.Adder), which writes finished episodes to replay and store.
    """

    def __init__(self, network: QNetwork, specs: DataSpecs, epsilon: float, seed: int, adder: Any):
        self.variables = list(network.variables)
        self._adder = adder
        self._greedy = FeedForwardActor(GreedyPolicy(network, specs.action), specs)
        self._epsilon = epsilon
        self._num_actions = specs.action.num_values
        self._dtype = np.dtype(specs.action.dtype)
        self._rng = np.random.default_rng(seed)

    def observe_first(self, timestep: dm_env.TimeStep) -> None:
        self._adder.observe_first(timestep)

    def observe(self, action: Any, next_timestep: dm_env.TimeStep) -> None:
        self._adder.observe(action, next_timestep)

    def select_action(self, timestep: dm_env.TimeStep) -> np.ndarray:
        if self._rng.random() < self._epsilon:
            return self._dtype.type(self._rng.integers(self._num_actions))
        return self._greedy(timestep)

    def greedy_action(self, timestep: dm_env.TimeStep) -> np.ndarray:
        return self._greedy(timestep)
