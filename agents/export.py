"""Exporting a trained policy as a SavedModel that needs TensorFlow only.

    policy = tf.saved_model.load(OUT)
    actions = policy(observations)                        # batched, nested like the dataset's
    actions = policy.signatures["serving_default"](**flat)["action"]   # TF Serving style

The module saves the policy's variables and one traced `__call__` with the dataset's batched
observation specs; no Python class of rlstore (or Sonnet) is needed to load or run it.
`policy.json` beside it describes the inputs and outputs for people and other tools.

A recurrent policy (one with `initial_state`, e.g. R2D3's) carries its state explicitly and
reads the previous action and reward (int32 and float32 [batch]; 0 on an episode's first step):

    state = policy.initial_state(batch_size)              # tuple of float32 [batch, ...] tensors
    action, state = policy(observations, prev_action, prev_reward, state)   # every step
    policy.signatures["serving_default"](**flat, prev_action=a, prev_reward=r, state_0=h, state_1=c)
    # -> action, state_0, state_1
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import tensorflow as tf

from rlstore.agents.runs import TrainedAgent
from rlstore.agents.specs import SINGLE, flat_observation
from rlstore.nest import unflatten


class _ExportedPolicy(tf.Module):
    """Holds the policy (and so its variables) and the traced batched call."""

    def __init__(self, policy: tf.Module):
        super().__init__(name="exported_policy")
        self.policy = policy

    @tf.function
    def __call__(self, observation: Any) -> tf.Tensor:
        return self.policy(observation)


class _ExportedRecurrentPolicy(tf.Module):
    """Holds a recurrent policy, its traced batched step `(observation, prev_action, prev_reward,
    state) -> (action, state)` and `initial_state(batch_size)`, the state every episode starts from."""

    def __init__(self, policy: tf.Module):
        super().__init__(name="exported_recurrent_policy")
        self.policy = policy

    @tf.function
    def __call__(self, observation: Any, prev_action: tf.Tensor, prev_reward: tf.Tensor, state: Any) -> Any:
        return self.policy(observation, prev_action, prev_reward, state)

    @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="batch_size")])
    def initial_state(self, batch_size: tf.Tensor) -> Any:
        return self.policy.initial_state(batch_size)


def export_saved_model(agent: TrainedAgent, out: str | Path) -> Path:
    """Writes the agent's policy to `out` as a SavedModel (plus `policy.json`); returns `out`."""
    out = Path(out).expanduser().resolve()
    specs = agent.specs.observation_tensor_specs(batched=True)
    recurrent = hasattr(agent.policy, "initial_state")
    state_specs = previous = ()
    if recurrent:
        previous = (tf.TensorSpec([None], tf.int32, name="prev_action"), tf.TensorSpec([None], tf.float32,
                                                                                      name="prev_reward"))
        state_specs = tuple(tf.TensorSpec([None, *s.shape[1:]], s.dtype, name=f"state_{i}")
                            for i, s in enumerate(tf.nest.flatten(agent.policy.initial_state(1))))
        module = _ExportedRecurrentPolicy(agent.policy)
        module.__call__.get_concrete_function(specs, *previous, state_specs)
    else:
        module = _ExportedPolicy(agent.policy)
        module.__call__.get_concrete_function(specs)  # the one traced signature the SavedModel keeps
    flat_specs = flat_observation(specs)
    names = {key: _signature_name(key) for key in flat_specs}

    @tf.function(input_signature=[tf.TensorSpec(s.shape, s.dtype, name=names[k]) for k, s in sorted(flat_specs.items())]
                 + list(previous) + list(state_specs))
    def serving(*tensors):
        flat = dict(zip(sorted(flat_specs), tensors))
        observation = flat[SINGLE] if SINGLE in flat else unflatten(flat)
        if not recurrent:
            return {"action": module.__call__(observation)}
        prev_action, prev_reward = tensors[len(flat_specs):len(flat_specs) + 2]
        action, state = module.__call__(observation, prev_action, prev_reward, tuple(tensors[len(flat_specs) + 2:]))
        return {"action": action, **{f"state_{i}": value for i, value in enumerate(tf.nest.flatten(state))}}

    tf.saved_model.save(module, str(out), signatures={"serving_default": serving})
    description = {
        "agent": agent.manifest["agent"], "step": agent.step, "dataset": agent.manifest["dataset"]["ref"],
        "observation": {key or "observation": {"shape": [None, *spec.shape], "dtype": spec.dtype,
                                               "serving_input": names[key]}
                        for key, spec in sorted(agent.specs.observation.items())},
        "action": {"shape": [None, *agent.specs.action.shape], "dtype": agent.specs.action.dtype,
                   "num_values": agent.specs.action.num_values},
        "usage": "policy = tf.saved_model.load(DIR); action = policy(observation_batch)",
    }
    if recurrent:
        description["state"] = [{"shape": s.shape.as_list(), "dtype": s.dtype.name, "serving_input": s.name}
                                for s in state_specs]
        description["previous"] = [{"shape": [None], "dtype": s.dtype.name, "serving_input": s.name} for s in previous]
        description["usage"] = ("policy = tf.saved_model.load(DIR); state = policy.initial_state(batch_size); "
                                "action, state = policy(observation_batch, prev_action, prev_reward, state)  "
                                "# every step; state reset and prev_action, prev_reward 0 at an episode's start")
    (out / "policy.json").write_text(json.dumps(description, indent=1))
    return out


def _signature_name(key: str) -> str:
    return "observation" if key == SINGLE else "observation__" + key.replace("/", "__")
