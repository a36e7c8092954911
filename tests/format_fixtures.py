"""Real files in the log formats rlstore ingests, written by the tools (or layouts) that produce them.

- `write_d4rl_file`: a D4RL-layout HDF5 file written with h5py, as D4RL's own scripts do.
- `write_minari_dataset`: a Minari dataset written by the real `minari` package (test-only
  dependency), HDF5 or Arrow backend, with Dict/Tuple spaces, infos and seeds.
- `write_envlogger_log`: envlogger 1.2's Riegeli backend around rlstore's Catch env, several shards.
The imitation format is tested against the real file in shared/external beside the repository.

Each returns what went in, so tests compare against the producer's data, not against a reader.
"""
from __future__ import annotations

import gc
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

# ---- D4RL -----------------------------------------------------------------------------------


def write_d4rl_file(path: str | Path, episodes: Sequence[tuple[int, str]], trailing: int = 0, seed: int = 0,
                    next_observations: bool = True, timeouts: bool = True, extra: bool = True,
                    **overrides: Any) -> dict[str, np.ndarray]:
    """A D4RL file holding `episodes`, each (length, 'terminal' | 'timeout'), then `trailing`
    steps of an unfinished episode. `extra` adds infos/* and metadata/*; `overrides` replace or
    (with None) drop arrays. Returns the arrays written, by HDF5 key."""
    import h5py

    rng = np.random.default_rng(seed)
    total = sum(length for length, _ in episodes) + trailing
    observations = rng.normal(size=(total, 3)).astype(np.float32)
    arrays: dict[str, Any] = {
        "observations": observations,
        "actions": rng.uniform(-1, 1, size=(total, 2)).astype(np.float32),
        "rewards": rng.normal(size=total).astype(np.float32),
        "terminals": np.zeros(total, bool),
        "timeouts": np.zeros(total, bool),
    }
    next_obs = np.concatenate([observations[1:], rng.normal(size=(1, 3)).astype(np.float32)])
    end = 0
    for length, how in episodes:
        end += length
        arrays["terminals" if how == "terminal" else "timeouts"][end - 1] = True
        next_obs[end - 1] = rng.normal(size=3)  # the env's final observation, never seen as a next step
    if next_observations:
        arrays["next_observations"] = next_obs
    if not timeouts:
        del arrays["timeouts"]
    if extra:
        arrays["infos/qpos"] = rng.normal(size=(total, 2))
        arrays["infos/goal"] = rng.integers(0, 5, size=total).astype(np.int32)
        arrays["metadata/algorithm"] = b"SAC"
        arrays["metadata/iteration"] = np.int64(7)
        arrays["metadata/policy/fc0/weight"] = rng.normal(size=(3, 2)).astype(np.float32)
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    with h5py.File(path, "w") as h5:
        for key, value in arrays.items():
            h5.create_dataset(key, data=value)
    return arrays


# ---- Minari ---------------------------------------------------------------------------------

def minari_spaces():
    """Dict observation (with a Tuple, text and a 32x32 image Minari stores as JPEG), Tuple action."""
    import gymnasium as gym

    observation = gym.spaces.Dict({
        "pos": gym.spaces.Box(-1, 1, (2,), np.float32),
        "inner": gym.spaces.Tuple((gym.spaces.Discrete(3), gym.spaces.Box(-1, 1, (1,), np.float64))),
        "note": gym.spaces.Text(max_length=8),
        "camera": gym.spaces.Box(0, 255, (32, 32, 3), np.uint8),
    })
    action = gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Box(-1, 1, (2,), np.float32)))
    return observation, action


def write_minari_dataset(root: str | Path, backend: str, episodes: Sequence[tuple[int, str]] = ((3, "terminated"),
                         (4, "truncated"), (2, "unfinished")), seed: int = 0) -> tuple[Path, list[dict[str, Any]]]:
    """A dataset written by minari's own `create_dataset_from_buffers` under `root`.

    `episodes` are (steps, how it ended). Episode 1 is reset without a seed; the others have
    seed 100 + id. Returns the dataset directory (holding `data/`) and each episode's buffer
    contents (observations T+1 rows, actions T rows, ...).
    """
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer

    rng = np.random.default_rng(seed)
    observation_space, action_space = minari_spaces()
    buffers, written = [], []
    for episode_id, (steps, how) in enumerate(episodes):
        rows = steps + 1
        observations = {
            "pos": rng.uniform(-1, 1, (rows, 2)).astype(np.float32),
            "inner": (rng.integers(0, 3, rows), rng.uniform(-1, 1, (rows, 1))),
            "note": [f"s{t}" for t in range(rows)],
            "camera": np.broadcast_to(np.linspace(0, 255, rows, dtype=np.uint8)[:, None, None, None], (rows, 32, 32, 3)).copy(),
        }
        actions = (rng.integers(0, 2, steps), rng.uniform(-1, 1, (steps, 2)).astype(np.float32))
        flags = {"terminations": np.zeros(steps, bool), "truncations": np.zeros(steps, bool)}
        if how != "unfinished":
            flags["terminations" if how == "terminated" else "truncations"][-1] = True
        episode = dict(id=episode_id, seed=None if episode_id == 1 else 100 + episode_id, observations=observations,
                       actions=actions, rewards=rng.normal(size=steps), infos={"x": rng.normal(size=rows)}, **flags)
        buffers.append(EpisodeBuffer(**episode))
        written.append(episode)
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        with warnings.catch_warnings():  # minari asks for an env spec and evaluation env these datasets do not have
            warnings.simplefilter("ignore", UserWarning)
            minari.create_dataset_from_buffers(f"rlstore/{backend}-v0", buffers, observation_space=observation_space,
                                               action_space=action_space, data_format=backend, algorithm_name="random",
                                               description="rlstore test fixture")
    finally:
        if previous is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous
    return Path(root) / "rlstore" / f"{backend}-v0", written


# ---- envlogger (Riegeli) --------------------------------------------------------------------

ENVLOGGER_ENV = "gym:CartPole-v1?max_steps=12"


def write_envlogger_log(directory: str | Path, num_episodes: int = 5, episodes_per_shard: int = 2,
                        seed: int = 0) -> tuple[Path, list[dict[str, Any]]]:
    """CartPole episodes logged by envlogger 1.2's Riegeli backend, several shard directories.

    Even episodes push left until the pole falls (terminal), odd ones alternate left and right
    and last until the 12-step time limit (truncated); the last episode is left unfinished (2 steps, then the
    logger closes). Expected episodes are recorded from the env loop itself: step t holds o_t,
    the action taken after it, the reward/discount that followed, and the step metadata that
    `step_fn` returned for the timestep carrying o_t.
    """
    import envlogger

    from rlstore.envs import make_environment

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    env = make_environment(ENVLOGGER_ENV, seed=seed)
    clock = iter(range(1000, 10**9, 7))
    current = {"id": 0}
    stamps: list[int] = []

    def step_fn(timestep, action, environment):
        stamps.append(next(clock))
        return {"stamp": np.int64(stamps[-1]), "phase": "reset" if action is None else "step"}

    def episode_fn(timestep, action, environment):
        return {"episode_id": np.int64(current["id"])}

    expected = []
    with envlogger.EnvLogger(env, data_directory=str(directory), max_episodes_per_file=episodes_per_shard,
                             step_fn=step_fn, episode_fn=episode_fn, metadata={"agent": "scripted", "seed": seed}) as logged:
        for episode_id in range(num_episodes):
            current["id"] = 100 + episode_id
            stamps.clear()
            timestep = logged.reset()
            observations, actions, rewards, discounts = [timestep.observation], [], [], []
            unfinished = episode_id == num_episodes - 1
            while not timestep.last() and not (unfinished and len(actions) == 2):
                action = 0 if episode_id % 2 == 0 else len(actions) % 2
                timestep = logged.step(action)
                actions.append(action)
                rewards.append(timestep.reward)
                discounts.append(timestep.discount)
                observations.append(timestep.observation)
            length = len(observations)
            expected.append({
                "steps": {
                    "observation": np.stack(observations),
                    "action": np.array(actions + [0], np.int64),
                    "reward": np.array(rewards + [0.0], np.float64),
                    "discount": np.array(discounts + [0.0], np.float64),
                    "is_first": np.arange(length) == 0,
                    "is_last": np.arange(length) == length - 1,
                    "is_terminal": (np.arange(length) == length - 1) & (timestep.last() and timestep.discount == 0),
                    "stamp": np.array(stamps, np.int64),
                    "phase": np.array([b"reset"] + [b"step"] * (length - 1)),
                },
                "episode_id": np.int64(current["id"]),
            })
    del logged
    gc.collect()
    return directory, expected


# ---- reading back and checking ------------------------------------------------------------------

def stock_read(segments: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Every episode of a version through plain TFDS (no rlstore code), steps stacked into arrays."""
    import tensorflow_datasets as tfds

    builder = tfds.builder_from_directories([str(s) for s in segments])
    episodes = []
    for episode in builder.as_dataset(split="train"):
        steps = episode["steps"].batch(100_000).get_single_element()
        episodes.append(_bytes_text(tfds.as_numpy({**{k: v for k, v in episode.items() if k != "steps"}, "steps": steps})))
    return episodes


def _bytes_text(tree: Any) -> Any:
    """TFDS hands text back as bytes objects (object arrays); numpy bytes arrays compare simply."""
    if isinstance(tree, dict):
        return {k: _bytes_text(v) for k, v in tree.items()}
    if isinstance(tree, bytes) or (isinstance(tree, np.ndarray) and tree.dtype == object):
        return np.asarray(np.asarray(tree).tolist(), dtype=np.bytes_)
    return tree


def assert_trees_equal(expected: Any, actual: Any, path: str = "") -> None:
    """Same keys and, leaf by leaf, the same values and dtypes; names the first difference."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and sorted(expected) == sorted(actual), (path, sorted(expected), sorted(actual))
        for key in expected:
            assert_trees_equal(expected[key], actual[key], f"{path}/{key}")
        return
    expected, actual = np.asarray(expected), np.asarray(actual)
    assert expected.dtype == actual.dtype, (path, expected.dtype, actual.dtype)
    assert np.array_equal(expected, actual), (path, expected, actual)


def assert_rejected(error: Any, file: str | Path, nothing_in: Any, name: str = "ds", **location: Any) -> None:
    """A BadInputError naming `file` (and any episode/step/field given), with no version published."""
    assert error.location.file == str(file), (error.location, file)
    for part, value in location.items():
        assert getattr(error.location, part) == value, (part, error.location)
    assert str(file) in error.readable()
    assert nothing_in.versions(name) == []
    staging = Path(nothing_in.root) / name / "staging"
    assert not staging.exists() or not list(staging.iterdir())
