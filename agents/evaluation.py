"""Evaluating a policy on an environment spec: the number every agent run is judged by."""
from __future__ import annotations

from typing import Any, Callable

import dm_env
import numpy as np
from dm_env import specs as dm_specs
from tqdm import tqdm

from rlstore.agents.errors import AgentError
from rlstore.agents.specs import DataSpecs, flat_observation
from rlstore import seeds
from rlstore.envs import EnvSpecError, make_environment
from rlstore.envs.success import success_rate

Policy = Callable[[dm_env.TimeStep], Any]
RETURN_FIELDS = ("return_mean", "return_std", "return_min", "return_max")  # what a log row keeps of a result


def evaluate(make_actor: Callable[[dm_env.Environment], Policy], env_spec: str, episodes: int,
             seed: int = seeds.DEFAULT_EVALUATION_SEED,
             specs: DataSpecs | None = None, progress: bool = False) -> dict[str, Any]:
    """Plays `episodes` episodes of `env_spec` (seeded) and summarises their undiscounted returns.

    `make_actor(env)` builds the policy for the environment (an actor may need its action
    bounds). If `specs` is given, the environment's observations must match them, so a
    policy trained on one task is never silently scored on another.
    Returns `{env, seed, episodes, return_mean, return_std, return_min, return_max, returns}`,
    plus `success_rate` where the task has a notion of success (rlstore.envs.success).
    """
    if episodes < 1:
        raise AgentError(f"episodes must be >= 1, got {episodes}")
    env = make_env(env_spec, seed)
    if specs is not None:
        check_environment(specs, env, env_spec)
    actor = make_actor(env)
    returns = []
    for _ in tqdm(range(episodes), desc=f"eval {env_spec}", unit="episode", disable=not progress, leave=False):
        timestep = env.reset()
        total = 0.0
        while not timestep.last():
            timestep = env.step(actor(timestep))
            total += float(timestep.reward)
        returns.append(total)
    values = np.asarray(returns)
    result = {"env": env_spec, "seed": seed, "seed_use": seeds.use_of(seed), "episodes": episodes,
              "return_mean": float(values.mean()), "return_std": float(values.std()),
              "return_min": float(values.min()), "return_max": float(values.max()), "returns": returns}
    rate = success_rate(env_spec, returns)
    if rate is not None:
        result["success_rate"] = rate
    return result


def make_env(env_spec: str, seed: int = 0) -> dm_env.Environment:
    """The environment of a spec string; a bad spec is an AgentError (one line on the CLI)."""
    try:
        return make_environment(env_spec, seed=seed)
    except EnvSpecError as error:
        raise AgentError(str(error)) from None


def env_num_actions(env_spec: str) -> int | None:
    """The number of discrete actions of an environment, None if its actions are not discrete."""
    action_spec = make_env(env_spec).action_spec()
    return int(action_spec.num_values) if isinstance(action_spec, dm_specs.DiscreteArray) else None


def check_environment(specs: DataSpecs, env: dm_env.Environment, env_spec: str) -> None:
    """Raises AgentError unless the environment's observations have the dataset's shapes and dtypes."""
    expected = {key: (spec.shape, np.dtype(spec.dtype)) for key, spec in specs.observation.items()}
    actual = {key: (tuple(s.shape), np.dtype(s.dtype)) for key, s in flat_observation(env.observation_spec()).items()
              if not isinstance(s, dm_specs.StringArray)}  # text is never a network input
    if expected != actual:
        raise AgentError(f"environment {env_spec!r} has observations {_describe(actual)} but the agent was trained "
                         f"on {_describe(expected)}")
    action_spec = env.action_spec()
    if specs.action.discrete and getattr(action_spec, "num_values", specs.action.num_values) < specs.action.num_values:
        raise AgentError(f"environment {env_spec!r} has {action_spec.num_values} actions but the agent chooses "
                         f"among {specs.action.num_values}")


def _describe(specs: dict[str, tuple]) -> str:
    parts = [f"{key or 'observation'}: {dtype.name}{list(shape)}" for key, (shape, dtype) in sorted(specs.items())]
    return "{" + ", ".join(parts) + "}"
