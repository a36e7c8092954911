"""The R2D3 policy: (ε-)greedy actions of the online recurrent Q-network, one step at a time.

A TF-only module over batched observations, the previous actions and rewards (R2D2's extra LSTM
inputs: the agent's last action and the reward that came with this observation, 0 at an
episode's start) and the LSTM state, `(observation, prev_action, prev_reward, state) ->
(action, state)` with `initial_state(batch_size)`: the shape `rlstore.agents.actors.RecurrentActor`
drives in evaluation and acting, and `rlstore.agents.export` saves as a SavedModel (greedy; the target
network is not part of it). Actors explore with ε-greedy, and actor i of K uses
ε_i = ε^(1 + α·i/(K-1)) (Ape-X / R2D2), so the fleet spans from exploring to nearly greedy.
"""
from __future__ import annotations

from typing import Any

import sonnet as snt
import tensorflow as tf

from rlstore.agents.r2d3.networks import RecurrentQNetwork, State
from rlstore.agents.specs import ActionSpec


class RecurrentPolicy(snt.Module):
    """argmax_a Q(s, a) (with probability 1 - ε; a uniform action otherwise), in the dataset's action dtype."""

    def __init__(self, network: RecurrentQNetwork, action_spec: ActionSpec, epsilon: float = 0.0,
                 seed: int | None = None, name: str = "r2d3_policy"):
        super().__init__(name=name)
        self._network = network
        self._num_actions = action_spec.num_values
        self._dtype = tf.as_dtype(action_spec.dtype)
        self._epsilon = epsilon
        self._random = tf.random.Generator.from_seed(seed) if epsilon > 0 else None

    def initial_state(self, batch_size: int | tf.Tensor) -> State:
        return self._network.initial_state(batch_size)

    def __call__(self, observation: Any, prev_action: tf.Tensor, prev_reward: tf.Tensor,
                 state: State) -> tuple[tf.Tensor, State]:
        q_values, state = self._network(observation, prev_action, prev_reward, state)
        action = tf.argmax(q_values, axis=-1, output_type=tf.int32)
        if self._random is not None:
            size = tf.shape(action)
            explore = self._random.uniform(size) < self._epsilon
            action = tf.where(explore, self._random.uniform(size, 0, self._num_actions, dtype=tf.int32), action)
        return tf.cast(action, self._dtype), state


def actor_epsilon(index: int, num_actors: int, epsilon: float, alpha: float) -> float:
    """ε_i = ε^(1 + α·i/(K-1)) for actor i of K (a single actor uses ε)."""
    if num_actors <= 1:
        return epsilon
    return float(epsilon ** (1.0 + alpha * index / (num_actors - 1)))
