"""The write-back worker process: everything the actor should not pay for while acting.

`rlstore.writeback.WriteBack` (in the actor) only buffers timesteps and ships them here in
column batches. This process re-pairs them into RLDS episodes with `EpisodeRecorder`, appends
episodes to the store (committing every K) and inserts their rows into the Reverb tables of a
replay layout. It runs on another core, so encoding, hashing, publishing and gRPC stay off the
acting loop.

It is started with `python -m rlstore.writeback_worker DATA_FD REPLY_FD LIFELINE_FD`, three pipe
ends inherited from the actor. Messages on DATA: a config dict first, then ("steps", batch)...
and finally ("close", None). Replies: ("ready", None), ("committed", Commit), ("closed",
WriteBackSummary) or ("error", message).

The worker shares the actor's fate. A thread blocks reading LIFELINE, whose write end only the
actor holds; when the actor dies (even by `kill -9`) the read returns and the worker exits at
once, wherever it is, exactly as if it had been killed with the actor. Published versions are
safe at any such moment; the staging area it leaves is removed by the next writer or `gc`. It
ignores SIGINT and SIGTERM, which a terminal's Ctrl-C or a service manager sends to the whole
process group: stopping is the actor's decision, and its close() still needs the worker.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Mapping

import dm_env
import numpy as np

from rlstore.errors import RlstoreError
from rlstore.rollout import EpisodeRecorder
from rlstore.store import Store
from rlstore.writeback_store import PIPELINE_NAME, EpisodeAppender

if TYPE_CHECKING:
    from rlstore.replay import Layout

_STEP_TYPES = tuple(dm_env.StepType)
_FIRST = int(dm_env.StepType.FIRST)


def _row(values: Any, index: int) -> Any:
    """Row `index` of a column batch (an array or a dict of them)."""
    if isinstance(values, dict):
        return {key: _row(value, index) for key, value in values.items()}
    return values[index]


class StreamSink:
    """Consumes column batches of a dm_env stream; owns the appender and the inserter."""

    def __init__(self, store_root: str, dataset: str, run_id: str, environment: str, policy: str, commit_every: int,
                 replay: str | None, layout: Layout | None):
        # Imported now rather than at the first commit, which would stall the actor for seconds.
        import rlstore.quiet  # noqa: F401
        import tensorflow  # noqa: F401
        import tensorflow_datasets  # noqa: F401

        self._run_id = run_id
        self._inserter = None
        if replay:
            from rlstore.replay import Layout
            from rlstore.writeback_replay import ReplayInserter

            layout = layout or Layout()
            self._inserter = ReplayInserter(replay, layout)
        lineage = {"pipeline": PIPELINE_NAME, "run_id": run_id, "policy": policy, "environment": environment,
                   "options": {"commit_every": commit_every, "replay": replay,
                               "layout": layout.to_json() if replay else None}}
        self._appender = EpisodeAppender(Store(store_root), dataset, lineage, commit_every)
        self._recorder = EpisodeRecorder()
        self._episodes = 0
        self._steps = 0
        self._versions: list[int] = []

    def consume(self, batch: Mapping[str, Any]) -> list[dict[str, int]]:
        """Feeds a batch through the recorder; returns a commit record per version published."""
        observations, actions = batch["observation"], batch["action"]
        rewards, discounts = batch["reward"].tolist(), batch["discount"].tolist()
        action_index = 0
        finished, commits = [], []
        for index, kind in enumerate(batch["step_type"].tolist()):
            if kind == _FIRST:
                self._recorder.observe_first(dm_env.restart(_row(observations, index)))
                continue
            timestep = dm_env.TimeStep(_STEP_TYPES[kind], rewards[index], discounts[index], _row(observations, index))
            episode = self._recorder.observe(_row(actions, action_index), timestep)
            action_index += 1
            if episode is not None:
                finished.append(episode["steps"])
                manifest = self._add(episode)
                if manifest is not None:
                    commits.append(self._committed(manifest))
        if self._inserter is not None:
            self._inserter.add(finished)
        return commits

    def finish(self) -> list[dict[str, int]]:
        """Commits the finished episodes not yet committed; a partial episode is dropped."""
        manifest = self._appender.close()
        if self._inserter is not None:
            self._inserter.close()
        return [self._committed(manifest)] if manifest is not None else []

    def summary(self) -> dict[str, Any]:
        return {"run_id": self._run_id, "versions": self._versions, "episodes": self._appender.committed,
                "steps": self._steps, "replay_items": dict(self._inserter.inserted) if self._inserter else {}}

    def abort(self) -> None:
        """Releases the staging area without committing."""
        self._appender.close(commit=False)

    def _add(self, episode: dict[str, Any]):
        episode["episode_id"] = np.str_(f"{self._run_id}:{self._episodes}")
        self._episodes += 1
        self._steps += len(episode["steps"]["reward"])
        return self._appender.add(episode)

    def _committed(self, manifest) -> dict[str, int]:
        self._versions.append(manifest.version)
        return {"version": manifest.version, "episodes": manifest.segments[-1]["num_episodes"],
                "run_episodes": self._appender.committed}


def _exit_with(lifeline: Connection) -> None:
    try:
        lifeline.recv_bytes()
    except (EOFError, OSError):
        pass
    os._exit(1)


def _describe(error: BaseException) -> str:
    return error.readable() if isinstance(error, RlstoreError) else f"{type(error).__name__}: {error}"


def main(argv: list[str]) -> int:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    data, replies, lifeline = (Connection(int(fd)) for fd in argv)
    threading.Thread(target=_exit_with, args=(lifeline,), daemon=True).start()
    sink = None
    try:
        sink = StreamSink(**data.recv())
        replies.send(("ready", None))
        while True:
            kind, payload = data.recv()
            if kind == "close":
                for commit in sink.finish():
                    replies.send(("committed", commit))
                replies.send(("closed", sink.summary()))
                return 0
            for commit in sink.consume(payload):
                replies.send(("committed", commit))
    except BaseException as error:
        if sink is not None:  # first: once the actor reads the reply, it drops the lifeline
            sink.abort()
        if isinstance(error, EOFError):  # the actor dropped the writer without close()
            return 1
        replies.send(("error", _describe(error)))
        return 1


if __name__ == "__main__":
    status = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # skips TensorFlow's slow interpreter-shutdown hooks
