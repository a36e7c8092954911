"""The write-back worker process: everything the actor should not pay for while acting.

`rlstore.writeback.WriteBack` (in the actor) only buffers timesteps and ships them here in
column batches. This process cuts them into RLDS episodes (`rlstore.writeback.stream`), appends
them to the store a batch at a time (`rlstore.writeback.appender`, committing every K) and, on a
thread of its own, inserts their rows into the Reverb tables of a replay layout
(`rlstore.writeback.replay`). It runs on another core, so checking, encoding, hashing,
publishing and gRPC stay off the acting loop; the Reverb thread keeps Reverb's round trips off
the store's path, so a commit never waits for the server.

It is started with `python -m rlstore.writeback.worker DATA_FD REPLY_FD LIFELINE_FD REGION_FD
RETURNED_FD`, descriptors inherited from the actor: three pipe ends, the shared memory region of
`rlstore.writeback.channel` and the pipe on which the worker hands the region's slots back.
Messages on DATA: a config dict first, then ("steps", batch)... and finally ("close", None), or
("abort", None) when the actor refuses its own input. Replies: ("ready", None), ("committed",
Commit), ("closed", WriteBackSummary), ("aborted", None) or ("error", message).

The worker shares the actor's fate. A thread blocks reading LIFELINE, whose write end only the
actor holds; when the actor dies (even by `kill -9`) the read returns and the worker exits at
once, wherever it is, exactly as if it had been killed with the actor. Published versions are
safe at any such moment; the staging area it leaves is removed by the next writer or `gc`. It
ignores SIGINT and SIGTERM, which a terminal's Ctrl-C or a service manager sends to the whole
process group: stopping is the actor's decision, and its close() still needs the worker.
"""
from __future__ import annotations

import mmap
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any, Mapping

from rlstore import wire
from rlstore.child_env import exit_now
from rlstore.errors import describe
from rlstore.nest import unflatten
from rlstore.store import Store
from rlstore.writeback.channel import SLOT_BYTES, SLOTS, Receiver
from rlstore.writeback.appender import PIPELINE_NAME, EpisodeAppender
from rlstore.writeback.compactor import BackgroundCompactor
from rlstore.writeback.stream import StreamSplitter


class StreamSink:
    """Consumes column batches of a dm_env stream; owns the splitter, the appender and the inserter."""

    def __init__(self, store_root: str, dataset: str, run_id: str, environment: str, policy: str, commit_every: int,
                 replay: str | None, layout: dict[str, Any] | None, compact_every: int | None = None,
                 frame_stack: int = 1):
        """`layout` is a replay `Layout` as `Layout.to_json` gives it (default: `Layout()`);
        `compact_every` K compacts the dataset after every K-th commit, on a thread of its own;
        `frame_stack` k > 1: the observations are single frames, stored and served as stacks of k."""
        # Imported now rather than at the first commit, which would stall the actor for seconds.
        import tensorflow  # noqa: F401
        import tensorflow_datasets  # noqa: F401

        self._run_id = run_id
        self._inserter = None
        if replay:
            from rlstore.replay import Layout
            from rlstore.writeback.replay import BackgroundInserter, ReplayInserter

            layout = Layout.from_json(layout) if layout else Layout()
            self._inserter = BackgroundInserter(ReplayInserter(replay, layout, frame_stack=frame_stack))
        lineage = {"pipeline": PIPELINE_NAME, "run_id": run_id, "policy": policy, "environment": environment,
                   "options": {"commit_every": commit_every, "replay": replay,
                               "layout": layout.to_json() if replay else None}}
        self._appender = EpisodeAppender(Store(store_root), dataset, lineage, commit_every, frame_stack)
        self._compactor = BackgroundCompactor(Store(store_root), dataset, compact_every) if compact_every else None
        self._splitter = StreamSplitter(run_id)
        self._steps = 0
        self._versions: list[int] = []
        self._cpu_at_start = time.process_time()

    def consume(self, batch: Mapping[str, Any]) -> list[dict[str, int]]:
        """Stores the episodes a batch finishes (and queues their rows for Reverb); returns a
        commit record per version published."""
        episodes = self._splitter.split(batch)
        if episodes is None:
            return []
        manifests = self._appender.add(episodes)
        self._steps += len(episodes.steps["reward"])
        if self._inserter is not None:
            self._inserter.add(unflatten(episodes.steps))
        return [self._committed(manifest) for manifest in manifests]

    def finish(self) -> list[dict[str, int]]:
        """Commits the finished episodes not yet committed (a partial episode is dropped) and
        waits until Reverb has confirmed every row."""
        manifest = self._appender.close()
        if self._inserter is not None:
            self._inserter.close()
        if self._compactor is not None:
            self._compactor.close()
        return [self._committed(manifest)] if manifest is not None else []

    def summary(self) -> dict[str, Any]:
        return {"run_id": self._run_id, "versions": self._versions, "episodes": self._appender.committed,
                "steps": self._steps, "replay_items": dict(self._inserter.inserted) if self._inserter else {},
                "worker_cpu_s": time.process_time() - self._cpu_at_start,
                "compacted_versions": self._compactor.versions if self._compactor else [],
                "compaction_errors": self._compactor.errors if self._compactor else []}

    def abort(self) -> None:
        """Releases the staging area without committing."""
        self._appender.close(commit=False)

    def _committed(self, manifest) -> dict[str, int]:
        self._versions.append(manifest.version)
        if self._compactor is not None:
            self._compactor.committed()
        return {"version": manifest.version, "episodes": sum(s["num_episodes"] for s in manifest.added),
                "run_episodes": self._appender.committed}


def _exit_with(lifeline: Connection) -> None:
    try:
        lifeline.recv_bytes()
    except (EOFError, OSError):
        pass
    os._exit(1)


def main(argv: list[str]) -> int:
    from rlstore.quiet import silence

    silence()  # this process owns no terminal, but its log should stay readable
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    data_fd, reply_fd, lifeline_fd, region_fd, returned_fd = (int(fd) for fd in argv)
    replies, lifeline = Connection(reply_fd), Connection(lifeline_fd)
    threading.Thread(target=_exit_with, args=(lifeline,), daemon=True).start()
    data = Receiver(Connection(data_fd), mmap.mmap(region_fd, SLOTS * SLOT_BYTES), returned_fd)
    sink = None
    try:
        sink = StreamSink(**data.recv())
        wire.send(replies, ("ready", None))
        while True:
            kind, payload = data.recv()
            if kind == "close":
                for commit in sink.finish():
                    wire.send(replies, ("committed", commit))
                wire.send(replies, ("closed", sink.summary()))
                return 0
            if kind == "abort":  # the actor was given bad input: what is committed stays, the rest goes
                sink.abort()
                wire.send(replies, ("aborted", None))
                return 1
            for commit in sink.consume(payload):
                wire.send(replies, ("committed", commit))
    except BaseException as error:
        if sink is not None:  # first: once the actor reads the reply, it drops the lifeline
            sink.abort()
        if isinstance(error, EOFError):  # the actor dropped the writer without close()
            return 1
        wire.send(replies, ("error", describe(error)))
        return 1


if __name__ == "__main__":
    exit_now(main(sys.argv[1:]))
