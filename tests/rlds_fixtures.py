"""Small RLDS datasets written by the tools that really produce them, for source-format tests.

Each builder writes into a given directory and returns `(path, expected)`: the path to hand to
`ingest(..., format="rlds")` and the episodes that went in, as numpy dicts
(`{'steps': {field: array[T, ...]}, **episode_metadata}`, nested dicts for nested features).
Expected episodes hold exactly what the producer was given, including whatever sat in the last
step's action/reward/discount; RLDS leaves those undefined and rlstore zero-fills them, so
tests compare through `zero_filled`.

- `write_tfds_dataset`: TFDS's own writer (`tfds.dataset_builders.store_as_tfds_dataset`), two
  splits, shards named `...-of-NNNNN`, PNG images, a zlib tensor, text fields.
- `write_envlogger_dataset`: envlogger 1.2's TFDS backend around rlstore's Catch env; its
  shards have no `-of-NNNNN` suffix.
- `write_rlstore_segment`: npz logs ingested by rlstore's Beam pipeline; one segment directory.
"""
from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import numpy as np


Episode = dict[str, Any]

ZERO_FILLED = ("action", "reward", "discount")


def zero_filled(episode: Episode) -> Episode:
    """`episode` with the last step's action, reward and discount set to 0 (RLDS convention)."""

    def zero_last(value):
        if isinstance(value, dict):
            return {k: zero_last(v) for k, v in value.items()}
        value = np.array(value, copy=True)
        value[-1] = 0
        return value

    steps = {k: zero_last(v) if k in ZERO_FILLED else v for k, v in episode["steps"].items()}
    return {**episode, "steps": steps}


def _flags(length: int, terminal: bool) -> dict[str, np.ndarray]:
    index = np.arange(length)
    return {"is_first": index == 0, "is_last": index == length - 1,
            "is_terminal": (index == length - 1) & terminal}


# ---- (a) TFDS's writer --------------------------------------------------------------------

TFDS_NAME = "toy_rlds"
TFDS_VERSION = "1.0.0"


def tfds_episode(episode_id: int, length: int, terminal: bool, rng: np.random.Generator) -> Episode:
    """One episode for the TFDS-written dataset; the last step carries non-zero junk in
    action/reward/discount, which readers must zero-fill."""
    discount = np.ones(length, np.float32)
    discount[-2] = 0.0 if terminal else 0.5
    discount[-1] = 0.25  # undefined in RLDS: after the last observation no action is taken
    steps = {
        "observation": {
            "pos": rng.normal(size=(length, 3)).astype(np.float32),
            "image": rng.integers(0, 256, size=(length, 8, 8, 3), dtype=np.uint8),
        },
        "action": rng.integers(0, 4, size=length).astype(np.int64) + 1,
        "reward": rng.normal(size=length).astype(np.float32),
        "discount": discount,
        **_flags(length, terminal),
        # step metadata: zlib-encoded float tensor and a text field
        "q_values": rng.normal(size=(length, 4)).astype(np.float32),
        "instruction": np.array([f"ep{episode_id}-step{t}".encode() for t in range(length)], dtype=np.bytes_),
    }
    return {"steps": steps, "episode_id": np.int64(episode_id), "agent": np.bytes_(f"agent-{episode_id % 2}")}


def tfds_features():
    import tensorflow_datasets as tfds

    return tfds.features.FeaturesDict({
        "steps": tfds.features.Dataset({
            "observation": tfds.features.FeaturesDict({
                "pos": tfds.features.Tensor(shape=(3,), dtype=np.float32),
                "image": tfds.features.Image(shape=(8, 8, 3), dtype=np.uint8, encoding_format="png"),
            }),
            "action": tfds.features.Scalar(dtype=np.int64),
            "reward": tfds.features.Scalar(dtype=np.float32),
            "discount": tfds.features.Scalar(dtype=np.float32),
            "is_first": tfds.features.Scalar(dtype=np.bool_),
            "is_last": tfds.features.Scalar(dtype=np.bool_),
            "is_terminal": tfds.features.Scalar(dtype=np.bool_),
            "q_values": tfds.features.Tensor(shape=(4,), dtype=np.float32, encoding=tfds.features.Encoding.ZLIB),
            "instruction": tfds.features.Text(),
        }),
        "episode_id": tfds.features.Scalar(dtype=np.int64),
        "agent": tfds.features.Text(),
    })


def _as_example(episode: Episode) -> dict[str, Any]:
    """An episode as TFDS's encoder wants it (numpy arrays; text as str)."""
    steps = dict(episode["steps"])
    steps["instruction"] = [s.decode() for s in steps["instruction"].tolist()]
    return {"steps": steps, "episode_id": episode["episode_id"], "agent": episode["agent"].decode()}


def write_tfds_dataset(directory: str | Path, seed: int = 0) -> tuple[Path, list[Episode]]:
    """A two-split RLDS dataset written by `tfds.dataset_builders.store_as_tfds_dataset`.

    Returns the data_dir root (the dataset lives in `<root>/toy_rlds/1.0.0/`) and the episodes:
    3 in 'train' (ids 0-2) and 2 in 'test' (ids 10-11), mixing terminal and truncated ones.
    """
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    rng = np.random.default_rng(seed)
    root = Path(directory)
    train = [tfds_episode(i, length, terminal, rng) for i, length, terminal in ((0, 3, True), (1, 5, False), (2, 4, True))]
    test = [tfds_episode(i, length, terminal, rng) for i, length, terminal in ((10, 2, True), (11, 4, False))]
    tfds.dataset_builders.store_as_tfds_dataset(
        name=TFDS_NAME,
        version=TFDS_VERSION,
        features=tfds_features(),
        split_datasets={
            "train": [(int(e["episode_id"]), _as_example(e)) for e in train],
            "test": [(int(e["episode_id"]), _as_example(e)) for e in test],
        },
        data_dir=str(root),
        file_format="tfrecord",
        download_config=tfds.download.DownloadConfig(max_examples_per_split=None),
    )
    return root, train + test


def tfds_dataset_dir(root: str | Path) -> Path:
    """The `<name>/<version>` directory inside the root `write_tfds_dataset` returned."""
    return Path(root) / TFDS_NAME / TFDS_VERSION


# ---- (b) envlogger's TFDS backend ---------------------------------------------------------

ENV_SPEC = "catch:rows=5,columns=3"
ENVLOGGER_NAME = "catch_log"


def envlogger_config():
    import tensorflow_datasets as tfds

    # envlogger 1.2 takes TFDS's RLDS DatasetConfig (the one envlogger re-exports as
    # tfds_backend_writer.DatasetConfig; rlds 0.1.8 has no DatasetConfig in rlds_types).
    return tfds.rlds.rlds_base.DatasetConfig(
        name=ENVLOGGER_NAME,
        observation_info=tfds.features.Tensor(shape=(5, 3), dtype=np.float32, encoding=tfds.features.Encoding.ZLIB),
        action_info=np.int64,
        reward_info=np.float64,
        discount_info=np.float64,
        step_metadata_info={"timestamp": np.int64},
        episode_metadata_info={"episode_id": np.int64},
    )


def write_envlogger_dataset(directory: str | Path, num_episodes: int = 5, episodes_per_file: int = 2,
                            seed: int = 0) -> tuple[Path, list[Episode]]:
    """Episodes of rlstore's Catch env (random policy) logged by envlogger's TFDSBackendWriter.

    The expected episodes are recorded from the env loop itself, not read back from disk: step
    t holds o_t, the action taken after it and the reward/discount that followed; the step
    metadata `timestamp` is what `step_fn` returned for the timestep carrying o_t.
    """
    import envlogger
    from envlogger.backends import tfds_backend_writer

    from rlstore.envs import make_environment, make_policy

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    env = make_environment(ENV_SPEC, seed=seed)
    policy = make_policy("random", ENV_SPEC, env, seed=seed)
    clock = iter(range(1000, 10**9, 7))
    current = {"id": 0}
    stamps: list[int] = []

    def step_fn(timestep, action, environment):
        stamps.append(next(clock))
        return {"timestamp": np.int64(stamps[-1])}

    def episode_fn(timestep, action, environment):
        return {"episode_id": np.int64(current["id"])}

    backend = tfds_backend_writer.TFDSBackendWriter(
        data_directory=str(directory), ds_config=envlogger_config(), max_episodes_per_file=episodes_per_file)
    expected = []
    with envlogger.EnvLogger(env, backend=backend, step_fn=step_fn, episode_fn=episode_fn) as logged:
        for episode_id in range(num_episodes):
            current["id"] = 100 + episode_id
            stamps.clear()
            timestep = logged.reset()
            observations, actions, rewards, discounts = [timestep.observation], [], [], []
            while not timestep.last():
                action = policy(timestep)
                timestep = logged.step(action)
                actions.append(np.int64(action))
                rewards.append(timestep.reward)
                discounts.append(timestep.discount)
                observations.append(timestep.observation)
            length = len(observations)
            steps = {
                "observation": np.stack(observations).astype(np.float32),
                "action": np.array(actions + [0], np.int64),
                "reward": np.array(rewards + [0.0], np.float64),
                "discount": np.array(discounts + [0.0], np.float64),
                **_flags(length, terminal=timestep.discount == 0),
                "timestamp": np.array(stamps, np.int64),
            }
            expected.append({"steps": steps, "episode_id": np.int64(current["id"])})
    # The writer's __del__ closes it again; let that happen now, while logging still exists,
    # rather than at interpreter exit.
    del logged, backend
    gc.collect()
    return directory, expected


# ---- (c) another rlstore ------------------------------------------------------------------

def rlstore_episode(episode_id: int, length: int, terminal: bool, rng: np.random.Generator) -> Episode:
    from rlstore.episode import make_episode

    discount = np.ones(length, np.float32)
    discount[-2] = 0.0 if terminal else 0.9
    return make_episode(
        observation={"pos": rng.normal(size=(length, 2)).astype(np.float32),
                     "image": rng.integers(0, 256, size=(length, 6, 6, 3), dtype=np.uint8)},
        action=rng.normal(size=(length, 2)).astype(np.float32),
        reward=rng.normal(size=length).astype(np.float32),
        discount=discount,
        is_terminal=terminal,
        step_metadata={"policy_logprob": rng.normal(size=length).astype(np.float32)},
        episode_metadata={"episode_id": np.int64(episode_id)},
    )


def write_rlstore_segment(directory: str | Path, seed: int = 0) -> tuple[Path, list[Episode]]:
    """npz logs ingested into a fresh store under `directory`; returns one segment directory."""
    from rlstore.pipelines.ingest import ingest
    from rlstore.pipelines.sources.npz import write_episode
    from rlstore.store import Store

    directory = Path(directory)
    logs = directory / "npz"
    logs.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    episodes = [rlstore_episode(200 + i, length, terminal, rng)
                for i, (length, terminal) in enumerate(((4, True), (3, False), (6, True)))]
    for episode in episodes:
        write_episode(logs / f"episode_{int(episode['episode_id'])}.npz", episode)
    store = Store(directory / "store")
    ingest(store, "source", [str(logs)], format="npz")
    (segment,) = store.segment_dirs("source")
    return segment, episodes
