"""Running a batched TensorFlow policy in a dm_env environment, one timestep at a time."""
from __future__ import annotations

from typing import Any, Callable

import dm_env
import numpy as np
import tensorflow as tf
from dm_env import specs as dm_specs

from agents.specs import DataSpecs

BatchedPolicy = Callable[[Any], tf.Tensor]


class FeedForwardActor:
    """A dm_env policy (`timestep -> action`) over a batched, memoryless TF policy.

    The policy is traced once with the dataset's observation specs, so acting costs one graph
    call per step. Continuous actions are clipped to the environment's bounds when it has them:
    a regression head can overshoot, and the environment is the authority on what is legal.
    """

    def __init__(self, policy: BatchedPolicy, specs: DataSpecs, env_action_spec: Any = None):
        self._policy = tf.function(policy, input_signature=[specs.observation_tensor_specs(batched=True)])
        self._bounds = None
        if isinstance(env_action_spec, dm_specs.BoundedArray) and not isinstance(env_action_spec, dm_specs.DiscreteArray):
            self._bounds = (env_action_spec.minimum, env_action_spec.maximum)

    def __call__(self, timestep: dm_env.TimeStep) -> np.ndarray:
        observation = tf.nest.map_structure(lambda x: np.asarray(x)[None], timestep.observation)
        action = self._policy(observation)[0].numpy()
        if self._bounds is not None:
            action = np.clip(action, *self._bounds).astype(action.dtype)
        return action
