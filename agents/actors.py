"""Running a batched TensorFlow policy in a dm_env environment, one timestep at a time."""
from __future__ import annotations

from typing import Any, Callable

import dm_env
import numpy as np
import tensorflow as tf
from dm_env import specs as dm_specs

from rlstore.agents.specs import DataSpecs, numeric_observation

BatchedPolicy = Callable[[Any], tf.Tensor]


def _batch_of_one(observation: Any) -> Any:
    """A timestep's observation as a batch of one, as the traced batched policies take it."""
    return tf.nest.map_structure(lambda x: np.asarray(x)[None], observation)


class FeedForwardActor:
    """A dm_env policy (`timestep -> action`) over a batched, memoryless TF policy.

    The policy is traced once with the dataset's observation specs, so acting costs one graph
    call per step. Continuous actions are clipped to the environment's bounds when it has them:
    a regression head can overshoot, and the environment is the authority on what is legal.
    """

    def __init__(self, policy: BatchedPolicy, specs: DataSpecs, env_action_spec: Any = None):
        self._policy = tf.function(policy, input_signature=[specs.observation_tensor_specs(batched=True)])
        self._specs = specs
        self._bounds = None
        if isinstance(env_action_spec, dm_specs.BoundedArray) and not isinstance(env_action_spec, dm_specs.DiscreteArray):
            self._bounds = (env_action_spec.minimum, env_action_spec.maximum)

    def __call__(self, timestep: dm_env.TimeStep) -> np.ndarray:
        action = self._policy(_batch_of_one(numeric_observation(timestep.observation, self._specs)))[0].numpy()
        if self._bounds is not None:
            action = np.clip(action, *self._bounds).astype(action.dtype)
        return action


class RecurrentActor:
    """A dm_env policy (`timestep -> action`) over a batched RECURRENT TF policy.

    The policy maps `(observation, prev_action, prev_reward, state) -> (action, state)` and has
    `initial_state(batch_size)` (rlstore.agents.r2d3.acting.RecurrentPolicy). The actor feeds it
    its own previous action and the reward the timestep brings (both 0 on an episode's first
    step). The state is carried from one step to the next and reset to the initial state at
    every episode's first timestep, so one actor plays any number of episodes. `step_state` is
    the state the last action was chosen from: what an online actor stores with a replay
    sequence that starts at that step (R2D2's stored recurrent state); `state` is the one the
    next step continues from.
    """

    def __init__(self, policy: Any, specs: DataSpecs):
        self._initial = tf.nest.map_structure(lambda x: x.numpy(), policy.initial_state(1))
        state_specs = tf.nest.map_structure(lambda x: tf.TensorSpec(x.shape, x.dtype), self._initial)
        self._policy = tf.function(policy, input_signature=[
            specs.observation_tensor_specs(batched=True), tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None], tf.float32), state_specs])
        self._specs = specs
        self._state = self.step_state = self._initial
        self._prev_action = np.zeros(1, np.int32)

    @property
    def state(self) -> Any:
        return self._state

    def __call__(self, timestep: dm_env.TimeStep) -> np.ndarray:
        if timestep.first():
            self._state, self._prev_action = self._initial, np.zeros(1, np.int32)
        reward = np.asarray([0.0 if timestep.first() or timestep.reward is None else timestep.reward], np.float32)
        self.step_state = self._state
        action, state = self._policy(_batch_of_one(numeric_observation(timestep.observation, self._specs)),
                                     self._prev_action, reward, self._state)
        self._state = tf.nest.map_structure(lambda x: x.numpy(), state)
        action = action[0].numpy()
        self._prev_action = np.asarray([action], np.int32)
        return action
