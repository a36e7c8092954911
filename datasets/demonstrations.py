"""Demonstration logs made by the built-in scripted experts, for the demo and the benchmarks."""
from __future__ import annotations

from pathlib import Path

from rlstore.pipelines.sources.npz import write_episode
from rlstore.envs import balance_cues, make_environment, make_policy
from rlstore.rollout import run_episodes


def record_npz_logs(env_spec: str, policy: str, num_episodes: int, out_dir: str | Path, seed: int = 0) -> list[Path]:
    """Plays `num_episodes` with a `random` or `expert` policy and saves each as an npz log.

    Memory tasks show every hidden cue equally often (rlstore.envs.cues)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = balance_cues(make_environment(env_spec, seed=seed))
    actor = make_policy(policy, env_spec, env, seed=seed)
    paths = []
    for index, episode in enumerate(run_episodes(env, actor, num_episodes)):
        path = out_dir / f"episode_{index:05d}.npz"
        write_episode(path, episode)
        paths.append(path)
    return paths


def ingest_expert_demos(store, dataset: str, env_spec: str, num_episodes: int, logs_dir: str | Path, seed: int = 0):
    """Records expert npz logs and ingests them through the Beam pipeline; returns the Manifest.

    The benchmarks start from data that went through the real ingest path, like a user's would.
    """
    from rlstore.pipelines.ingest import ingest

    record_npz_logs(env_spec, "expert", num_episodes, logs_dir, seed=seed)
    return ingest(store, dataset, [str(logs_dir)], format="npz")
