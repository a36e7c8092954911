"""Environments for rlstore, built from one spec-string format (see `rlstore.envs.spec`).

Every env is a dm_env.Environment so data collection and evaluation need one code path,
whether the task is a built-in bsuite-style one or a gymnasium env. Nothing here imports
TensorFlow.
"""
from __future__ import annotations

import dm_env
import gymnasium as gym

from rlstore.envs import suites
from rlstore.envs.catch import Catch
from rlstore.envs.cues import balance_cues, hidden_cue
from rlstore.envs.deep_sea import DeepSea
from rlstore.envs.experts import Policy, make_expert, make_policy
from rlstore.envs.gym_adapter import GymAdapter
from rlstore.envs.spec import EnvSpec, EnvSpecError, parse_spec, without_step_cost
from rlstore.envs.step_cost import StepCost
from rlstore.envs.tmaze import TMaze

__all__ = [
    "EnvSpec",
    "EnvSpecError",
    "Policy",
    "balance_cues",
    "hidden_cue",
    "make_environment",
    "make_expert",
    "make_policy",
    "parse_spec",
    "without_step_cost",
]

_BUILTIN = {"catch": Catch, "deep_sea": DeepSea, "tmaze": TMaze}


def make_environment(spec: str, seed: int | None = None) -> dm_env.Environment:
    """Builds the env named by `spec`; the same spec and seed give the same trajectories
    (with `step_ms=N`, slower ones: see rlstore.envs.step_cost)."""
    parsed = parse_spec(spec)
    if parsed.kind == "gym":
        env: dm_env.Environment = GymAdapter(_make_gym(spec, parsed), seed=seed)
    elif parsed.kind == "atari":
        env = _make_atari(spec, parsed, seed)
    else:
        env = _BUILTIN[parsed.kind](seed=seed, **parsed.params)
    return StepCost(env, parsed.step_ms) if parsed.step_ms else env


def _make_gym(spec: str, parsed: EnvSpec) -> gym.Env:
    """gym.make with the suite registered first and its default time limit; any failure is one EnvSpecError."""
    try:
        suite = suites.prepare(parsed.gym_id)
        max_steps = parsed.params.get("max_steps", suite.default_max_steps if suite else None)
        return gym.make(parsed.gym_id, max_episode_steps=max_steps)
    except (gym.error.Error, ImportError, TypeError) as error:
        problem = str(error).strip().splitlines()[0].rstrip(".") if str(error).strip() else type(error).__name__
        raise EnvSpecError(spec, f"gymnasium cannot make {parsed.gym_id!r}: {problem}") from None


def _make_atari(spec: str, parsed: EnvSpec, seed: int | None) -> dm_env.Environment:
    """rlstore.envs.atari.AtariEnv; an unknown game or a missing ale-py is one EnvSpecError."""
    from rlstore.envs.atari import AtariEnv

    try:
        return AtariEnv(parsed.game, seed=seed, stack=parsed.params["stack"], sticky=bool(parsed.params["sticky"]),
                        max_steps=parsed.params["max_steps"])
    except (gym.error.Error, ImportError) as error:
        problem = str(error).strip().splitlines()[0].rstrip(".") if str(error).strip() else type(error).__name__
        raise EnvSpecError(spec, f"cannot make Atari game {parsed.game!r}: {problem}") from None
