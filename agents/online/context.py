"""What every process of an online run knows about it, rebuilt from the run manifest.

The supervisor writes run.json before it starts any part; each part (possibly on another host
that sees the same store and run directory) reads it back, so all parts agree on the config,
the seed, the specs and the exact demonstration version without passing them on command lines.

Specs come from the environment: an online run may have no demonstrations at all (a control
run with demo ratio 0), and when it has some, their schema must describe the same observations
and actions (checked once, when the run is created).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

import dm_env
import numpy as np
from dm_env import specs as dm_specs

from rlstore.agents import registry, run_manifest
from rlstore.agents.config_args import config_from_json
from rlstore.agents.errors import AgentError
from rlstore.agents.runs import RunDirectory
from rlstore.agents.specs import ActionSpec, ArraySpec, DataSpecs, flat_observation, is_image_array, specs_from_schema
from rlstore.envs import parse_spec
from rlstore.episode import make_episode
from rlstore.schema import Schema
from rlstore.store import Store


@dataclasses.dataclass(frozen=True)
class RunContext:
    """An online run as its parts see it (see rlstore.agents.online for the plug-in shape)."""

    agent: str
    run_id: str
    store: Store
    env: str                  # environment spec string
    env_seed: int             # the run's environments are built from it (rlstore.seeds: acting, tuning, evaluation)
    demos: str | None         # exact demonstration version "NAME@V", or None
    config: Any               # the agent's config dataclass
    seed: int                 # networks, exploration, sampling
    specs: DataSpecs
    run: RunDirectory
    actors: int
    env_steps: int            # the run's total budget, over all actors
    write_back: str | None    # store dataset the actors append their episodes to
    commit_every: int         # episodes per write-back version (per actor)
    eval_every: int           # env steps between actor 0's evaluations (0: none)
    eval_episodes: int
    compact_every: int | None = None  # actor 0 compacts the write-back dataset after every K-th commit
    checkpoint_every: float | None = None  # seconds between the learner's and replay's checkpoints
    session: int = 0                  # 0 for the first session, k for the k-th resume
    actor_start_steps: tuple[int, ...] = ()  # env steps each actor played in earlier sessions

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any], run: RunDirectory) -> "RunContext":
        online = manifest["online"]
        entry = registry.get(manifest["agent"])
        sessions = manifest["sessions"]
        return cls(agent=manifest["agent"], run_id=online["run_id"], store=Store(online["store"]), env=online["env"],
                   env_seed=online["env_seed"], demos=online["demos"],
                   config=config_from_json(entry.config_class(), manifest["config"]), seed=manifest["seed"],
                   specs=DataSpecs.from_json(manifest["specs"]), run=run, actors=online["actors"],
                   env_steps=online["env_steps"], write_back=online["write_back"]["dataset"],
                   commit_every=online["write_back"]["commit_every"],
                   compact_every=online["write_back"].get("compact_every"), eval_every=online["eval_every"],
                   eval_episodes=online["eval_episodes"],
                   checkpoint_every=online.get("checkpoint_every"),
                   session=max(len(sessions) - 1, 0),
                   actor_start_steps=tuple(sessions[-1].get("actor_start_steps", ()) if sessions else ()))

    @classmethod
    def load(cls, directory: str | Path) -> "RunContext":
        run = RunDirectory.at(directory)
        if not run.exists():
            raise AgentError(f"{run.path} has no run.json; start the run with `rlstore run` (--role all or replay) first")
        manifest = run_manifest.read(run.manifest_path)
        if "online" not in manifest:
            raise AgentError(f"{run.path} is a `train` run, not an online run")
        return cls.from_manifest(manifest, run)

    @property
    def frame_stack(self) -> int:
        """Frames per observation of the run's env (`atari:` games: 4); its actors record one
        frame per step and the replay tables share frames (rlstore.frames)."""
        return parse_spec(self.env).frame_stack

    def config_value(self, name: str, default: Any) -> Any:
        """A config field shared by online agents if this agent's config has it (e.g. demo_ratio)."""
        return getattr(self.config, name, default)


def specs_from_environment(env: dm_env.Environment) -> DataSpecs:
    """The specs of an environment's observations and actions (images: see specs.is_image_array)."""
    observation = {key: ArraySpec(tuple(spec.shape), np.dtype(spec.dtype).name,
                                  is_image_array(tuple(spec.shape), np.dtype(spec.dtype).name))
                   for key, spec in flat_observation(env.observation_spec()).items()
                   if not isinstance(spec, dm_specs.StringArray)}  # text is stored, never a network input
    action = env.action_spec()
    if isinstance(action, dm_specs.DiscreteArray):
        return DataSpecs(observation, ActionSpec((), np.dtype(action.dtype).name, int(action.num_values)))
    if not isinstance(action, dm_specs.Array):
        raise AgentError("online agents need a single action array (the environment's actions are a dict)")
    return DataSpecs(observation, ActionSpec(tuple(action.shape), np.dtype(action.dtype).name))


def actor_schema(specs: DataSpecs, frame_stack: int = 1) -> Schema:
    """The schema of the episodes actors record (rlstore.rollout.EpisodeRecorder: float32 rewards
    and discounts, observations and actions as the specs say): what an agent's replay signature
    is derived from when the run may have no demonstrations to take a schema from. With
    `frame_stack` k > 1 the observation [*S, k] is recorded as single frames [*S], stacked by k."""
    zeros = {key: np.zeros((2, *spec.shape), spec.dtype) for key, spec in specs.observation.items()}
    if frame_stack > 1:
        zeros = {key: value[..., -1] for key, value in zeros.items()}
    observation = zeros[""] if "" in zeros else zeros
    action = np.zeros((2, *specs.action.shape), specs.action.dtype)
    schema = Schema.derive(make_episode(observation=observation, action=action, reward=np.zeros(2, np.float32),
                                        discount=np.ones(2, np.float32), is_terminal=False))
    return schema.with_frames("observation", frame_stack) if frame_stack > 1 else schema


def check_demonstrations(specs: DataSpecs, store: Store, demos: str, env_spec: str) -> None:
    """Raises AgentError unless the demonstrations' steps have the environment's specs."""
    stored = specs_from_schema(store.manifest(demos).schema, specs.action.num_values)
    if _shapes(stored) != _shapes(specs):
        raise AgentError(f"the demonstrations {demos} do not match environment {env_spec!r}: they have "
                         f"{_describe(stored)}, the environment {_describe(specs)}")


def _shapes(specs: DataSpecs) -> tuple:
    """Shapes and dtypes of observations and actions (not the image flag: storage encodings differ)."""
    return ({key: (spec.shape, spec.dtype) for key, spec in specs.observation.items()},
            (specs.action.shape, specs.action.dtype))


def _describe(specs: DataSpecs) -> str:
    observation = ", ".join(f"{key or 'observation'}: {s.dtype}{list(s.shape)}" for key, s in sorted(specs.observation.items()))
    return f"{{{observation}}} and actions {specs.action.dtype}{list(specs.action.shape)}"
