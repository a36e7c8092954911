"""Resuming an online run (`rlstore run ... --out DIR --resume`) after a stop, a crash or `kill -9`.

What a resumed run continues from, and where each piece is kept:

- the learner: its latest checkpoint in DIR/checkpoints (weights, optimizer, update counter),
  written every `checkpoint_every` seconds (`--checkpoint-every`) or 2,000 updates and when it
  stops, restored by the learner role whenever one exists (`rlstore.agents.online.learning`);
- replay: the newest complete Reverb checkpoint in DIR/replay, which the replay role writes
  every `checkpoint_every` seconds and when it stops (`rlstore.agents.online.replay`).
  It restores both tables as they were, priorities and rate-limiter counts included. Without
  one (the run died before its first), the tables are filled as at the start: demonstrations
  loaded again, the agent's table empty until the actors refill it;
- the env-step count: each actor starts from the env steps of the episodes it has committed to
  the store in earlier sessions (`committed_segments`: the store, not a summary file, is the
  record, since a kill can land between a commit and the actor's note of it), or, without
  write-back, from its last summary (logs/actor-<i>.json, rewritten every few seconds);
- write-back: session k>0 of actor i writes with run id `<run id>-actor<i>-s<k>`, so episode ids
  (`<run id>:<index>`) never repeat across sessions. What the killed session had staged but not
  committed is removed by the next writer's staging (or `rlstore gc`).

The run manifest lists every segment the run committed, over all sessions
(`online.write_back.segments`: version, segment id, actor, session, episodes, steps, and the
range of the writer's episode indices), read back from the store's version lineage.

A resumed run must be the same run: the agent, the environment, its seed, the demonstrations,
the write-back dataset, the actor count, the seed and the agent's config must match run.json;
the env-step budget may change (a run can be extended). A supervisor holds DIR/supervisor.lock
while it runs, so a run still running is never resumed a second time.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any, Mapping

from rlstore.agents import run_manifest
from rlstore.agents.errors import AgentError
from rlstore.agents.runs import RunDirectory
from rlstore.store import Store
from rlstore.writeback.appender import PIPELINE_NAME

LOCK = "supervisor.lock"


def writer_run_id(run_id: str, actor: int, session: int) -> str:
    """The write-back run id of actor `actor` in session `session` (0: the first)."""
    return f"{run_id}-actor{actor}" + (f"-s{session}" if session else "")


class SupervisorLock:
    """An exclusive lock on DIR/supervisor.lock, held by the supervisor for the whole run.

    The kernel drops it when the process dies, even by `kill -9`, so a lock that is free means
    no supervisor runs the run."""

    def __init__(self, run: RunDirectory):
        run.path.mkdir(parents=True, exist_ok=True)
        self._path = run.path / LOCK
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            raise AgentError(f"{run.path} is still running (supervisor pid {holder}); stop it first") from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        os.close(self._fd)


def is_finished(manifest: Mapping[str, Any]) -> bool:
    """Did the run's last session play its budget and evaluate the final checkpoint?"""
    online = manifest["online"]
    return online.get("final_evaluation") is not None and online["env_steps_done"] >= online["env_steps"]


def check_same_run(manifest: Mapping[str, Any], agent: str, store: Store, given: Mapping[str, Any]) -> None:
    """Raises AgentError naming the first option that differs from the run's (see the module docstring).

    `given` holds the resuming invocation's values: env, env_seed, demos, write_back, actors,
    seed, config (the agent's full config as JSON).
    """
    online = manifest["online"]
    if manifest["agent"] != agent:
        raise AgentError(f"cannot resume: the run in this directory is a {manifest['agent']} run, not {agent}")
    if Store(online["store"]).location != store.location:  # a directory or a bucket URL, normalised alike
        raise AgentError(f"cannot resume: the run writes to store {online['store']}, not {store.location}")
    recorded = {"env": online["env"], "env_seed": online["env_seed"], "write_back": online["write_back"]["dataset"],
                "actors": online["actors"], "seed": manifest["seed"]}
    for key, value in recorded.items():
        if given[key] != value:
            raise AgentError(f"cannot resume: --{key.replace('_', '-')} is {given[key]!r}, the run used {value!r}")
    demos = given["demos"]
    if demos is not None and "@" not in demos and online["demos"] is not None:
        demos = f"{demos}@{online['demos'].rsplit('@', 1)[1]}"  # NAME means the version the run pinned
    if demos != online["demos"]:
        raise AgentError(f"cannot resume: --demos is {given['demos']!r}, the run used {online['demos']!r}")
    config = manifest["config"]
    for key in sorted(set(config) | set(given["config"])):
        if config.get(key) != given["config"].get(key):
            raise AgentError(f"cannot resume: config {key} is {given['config'].get(key)!r}, "
                             f"the run used {config.get(key)!r}")


def committed_segments(store: Store, dataset: str | None, run_id: str, since: int = 0) -> list[dict[str, Any]]:
    """Every segment the run's actors committed to `dataset` (versions above `since`), in version order."""
    prefix = f"{run_id}-actor"
    found = []
    for version in store.versions(dataset) if dataset else []:
        if version <= since:
            continue
        manifest = store.read_version(dataset, version)
        lineage = manifest.lineage
        writer = lineage.get("run_id")
        if lineage.get("pipeline") != PIPELINE_NAME or not isinstance(writer, str) or not writer.startswith(prefix):
            continue
        actor, _, session = writer[len(prefix):].partition("-s")
        first, end = lineage.get("run_episodes", [0, 0])
        for segment in manifest.added:
            found.append({"version": version, "segment": segment["id"], "actor": int(actor),
                          "session": int(session or 0), "writer_run_id": writer, "episodes": segment["num_episodes"],
                          "steps": segment["num_steps"], "run_episodes": [first, end]})
    return found


def actor_start_steps(segments: list[Mapping[str, Any]], summaries: list[Path], actors: int,
                      write_back: bool) -> list[int]:
    """Env steps each actor has already played: those of its committed episodes (an episode of T
    env steps is T + 1 RLDS steps), or without write-back, its last summary's count."""
    if write_back:
        done = [0] * actors
        for segment in segments:
            done[segment["actor"]] += segment["steps"] - segment["episodes"]
        return done
    return [run_manifest.read(path)["env_steps"] if path.is_file() else 0 for path in summaries]
