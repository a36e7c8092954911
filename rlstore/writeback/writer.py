"""Write-back from online actors: an Acme-style adder that feeds Reverb and the store.

    with WriteBack(store, "catch_online", environment="catch", policy="expert", commit_every=100,
                   replay="localhost:8000", layout=Layout(n_step=3)) as writer:
        timestep = env.reset()
        writer.observe_first(timestep)
        while not timestep.last():
            action = policy(timestep)
            timestep = env.step(action)
            writer.observe(action, timestep)

Every finished episode is appended to the dataset (episode metadata `episode_id` =
"<run_id>:<index>") and, with `replay`, its rows go into the Reverb tables of a replay
`Layout` (n-step `transitions`, and `sequences` if the layout names them). Every
`commit_every` episodes, and at close, the new episodes are published as a new version whose
lineage names the run id, the policy and the environment. A crash loses at most the episodes
since the last commit; published versions are never touched.

Why a separate process: encoding episodes, hashing shards, publishing and Reverb's gRPC cost
several times more CPU per step than a small environment does, so doing them on the acting
thread (even in a background thread, which shares the GIL) would slow acting several-fold. The
adder itself only keeps references to the timesteps' fields and the actions (`observe` is a few
list appends and a comparison) and, every `flush_steps` steps or at a commit boundary, ships them as a few
stacked arrays to `rlstore.writeback.worker`, which does the rest on another core, a batch of
episodes at a time. The arrays travel through shared memory (`rlstore.writeback.channel`), whose
few slots apply backpressure: if the worker falls behind, acting waits rather than buffering
without bound. Observations must not be
mutated by the environment after it returns them (they are referenced, not copied, until the
next flush).

Each flush holds observations and actions to the dtype and shape they first had
(`rlstore.writeback.columns`): a value that differs (say, a wrong-shaped observation) stops the
writer with an error naming the episode, step and field, before anything of it is stored.
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Callable, Mapping

import dm_env

from rlstore.child_env import child_environment
from rlstore.errors import BadInputError, RlstoreError
from rlstore.names import validate_name
from rlstore.store import Store
from rlstore import wire
from rlstore.writeback.channel import ChannelClosed, Sender, shared_region
from rlstore.writeback.columns import StepRecorder

if TYPE_CHECKING:
    from rlstore.replay import Layout

_PIPE_BYTES = 1 << 20  # Linux's default ceiling for an unprivileged process


class WriteBackError(RlstoreError):
    """The writer was given data it cannot store, or its worker failed (the reason is the
    message) or died. Either way the writer is stopped; committed versions stay."""


@dataclass(frozen=True)
class Commit:
    """One published version: its number, the episodes it added, the run's committed total."""

    version: int
    episodes: int
    run_episodes: int


@dataclass(frozen=True)
class WriteBackSummary:
    """What a closed writer committed: versions, episodes, their RLDS steps, Reverb items per
    table; and the CPU seconds its worker spent after start-up (all threads)."""

    run_id: str
    versions: list[int]
    episodes: int
    steps: int
    replay_items: dict[str, int]
    worker_cpu_s: float = 0.0
    compacted_versions: list[int] = field(default_factory=list)  # published by compaction (compact_every)
    compaction_errors: list[str] = field(default_factory=list)


def _new_run_id() -> str:
    """A unique, sortable run id: UTC time plus random hex."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


class WriteBack:
    """Actor-side writer: `observe_first(timestep)`, `observe(action, next_timestep)`, `close()`.

    `replay` is a Reverb server address (HOST:PORT); the tables of `layout` (default: `Layout()`,
    1-step `transitions`) receive the episodes' rows, exactly as `rlstore serve` would load them
    from the store. Without `replay` only the store is written. `on_commit` is called in the
    actor's process for each published version, at the actor's next flush. Timesteps are shipped
    `flush_steps` at a time, and at every commit boundary: more is cheaper per step, fewer gets
    rows to Reverb sooner. The constructor returns once the worker is ready (a few seconds: it
    imports TensorFlow), so that start-up never stalls acting. `compact_every` K (off by default)
    compacts the dataset after every K-th commit, on a thread of the worker
    (`rlstore.writeback.compactor`); the summary lists the versions compaction published.
    `frame_stack` k > 1: observations are frame stacks [*S, k] (an `atari:` env's); one frame per
    step is stored, with k in the schema, and Reverb items share frames (`rlstore.frames`,
    `rlstore.replay.stacked`); a stack that is not the previous one shifted by its newest frame
    stops the writer with an error naming episode and step.
    """

    def __init__(
        self,
        store: Store | str | os.PathLike,
        dataset: str,
        *,
        environment: str,
        policy: str,
        run_id: str | None = None,
        commit_every: int = 100,
        replay: str | None = None,
        layout: Layout | None = None,
        flush_steps: int = 1024,
        on_commit: Callable[[Commit], None] | None = None,
        compact_every: int | None = None,
        frame_stack: int = 1,
    ):
        validate_name(dataset)
        if commit_every < 1 or flush_steps < 1 or (compact_every is not None and compact_every < 1):
            raise ValueError(f"commit_every, flush_steps and compact_every must be >= 1, "
                             f"got {commit_every}, {flush_steps}, {compact_every}")
        store = store if isinstance(store, Store) else Store(store)
        self.run_id = run_id or _new_run_id()
        self.versions: list[int] = []
        self._commit_every = commit_every
        self._flush_steps = flush_steps
        self._on_commit = on_commit
        self.frame_stack = frame_stack
        self._recorder = StepRecorder(self.run_id, frame_stack)
        self._summary: WriteBackSummary | None = None
        self._start_worker({"store_root": store.location, "dataset": dataset, "run_id": self.run_id,
                            "environment": environment, "policy": policy, "commit_every": commit_every,
                            "replay": replay, "layout": layout.to_json() if layout else None,
                            "compact_every": compact_every, "frame_stack": frame_stack})

    # ---- the adder interface ----------------------------------------------------------------

    def observe_first(self, timestep: dm_env.TimeStep) -> None:
        self._recorder.observe_first(timestep)

    def observe(self, action: Any, next_timestep: dm_env.TimeStep, extras: Any = None) -> None:
        """Records a step; `extras` (e.g. a recurrent state) are stored with it as step metadata."""
        recorder = self._recorder
        if recorder.observe(action, next_timestep, extras) and recorder.episodes % self._commit_every == 0:
            self._flush()
        elif len(recorder.observations) >= self._flush_steps:
            self._flush()

    def ship(self, batch: Mapping[str, Any]) -> None:
        """Stores the episodes of a column batch recorded elsewhere (`StepRecorder.take`, e.g. by
        the online actors' `rlstore.writeback.adder.Adder`, whose one recording feeds Reverb and
        this writer). Not to be mixed with `observe` on the same writer."""
        self._send(("steps", batch))
        self._poll()

    def close(self) -> WriteBackSummary:
        """Commits every finished episode, waits for Reverb to confirm, stops the worker.

        An episode still in progress is dropped: only finished episodes are stored.
        """
        if self._summary is None:
            self._flush()
            self._send(("close", None))
            self._summary = WriteBackSummary(**self._await("closed"))
            self._stop(wait=False)
        return self._summary

    def __enter__(self) -> "WriteBack":
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self._data.closed:
            self.close()

    # ---- talking to the worker --------------------------------------------------------------

    def _start_worker(self, config: dict[str, Any]) -> None:
        data_read, data_write = os.pipe()
        try:  # room for messages too big for shared memory, so that acting rarely waits for the worker
            fcntl.fcntl(data_write, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        except (AttributeError, OSError):  # not Linux, or a lower limit: the default size works
            pass
        reply_read, reply_write = os.pipe()
        returned_read, returned_write = os.pipe()
        life_read, self._lifeline = os.pipe()
        region_fd, region = shared_region()
        env = child_environment()
        child_fds = (data_read, reply_write, life_read, region_fd, returned_write)
        self._process = subprocess.Popen([sys.executable, "-m", "rlstore.writeback.worker", *map(str, child_fds)],
                                         pass_fds=child_fds, env=env)
        for fd in child_fds:
            os.close(fd)
        self._data = Sender(Connection(data_write, readable=False), region, returned_read)
        self._replies = Connection(reply_read, writable=False)
        self._send(config)
        self._await("ready")

    def _flush(self) -> None:
        try:
            batch = self._recorder.take()
        except BadInputError as error:
            self._abort()
            raise WriteBackError(error.readable()) from None
        if batch is not None:
            self._send(("steps", batch))
        self._poll()

    def _poll(self) -> None:
        """Handles the worker's replies so far (commits, or the error that stopped it)."""
        while self._replies.poll():
            self._handle(*wire.recv(self._replies))

    def _abort(self) -> None:
        """Stops the worker once it has stored what it was sent before (committing where a
        commit was due); nothing after that is stored."""
        self._send(("abort", None))
        self._await("aborted")
        self._stop()

    def _send(self, message: Any) -> None:
        try:
            self._data.send(message)
        except (OSError, ChannelClosed):  # the worker is gone; its last reply says why
            self._await(None)

    def _await(self, wanted: str | None) -> Any:
        """The payload of the next `wanted` reply, handling commits on the way; None: until the end."""
        while True:
            try:
                kind, payload = wire.recv(self._replies)
            except (EOFError, OSError):
                self._stop()
                raise WriteBackError(f"the write-back worker exited (status {self._process.returncode}); "
                                     f"episodes after version {self.versions[-1] if self.versions else 'none'} "
                                     "were not committed") from None
            if kind == wanted:
                return payload
            self._handle(kind, payload)

    def _handle(self, kind: str, payload: Any) -> None:
        if kind == "error":
            self._stop()
            raise WriteBackError(payload)
        commit = Commit(**payload)
        self.versions.append(commit.version)
        if self._on_commit is not None:
            self._on_commit(commit)

    def _stop(self, wait: bool = True) -> None:
        """Closes the pipes, which ends the worker. `wait=False` once it has reported its
        summary: what is left is its exit, and unmapping TensorFlow takes it ~20 ms, which
        would cost a short run a noticeable share of its time. A thread reaps it instead."""
        if self._data.closed:
            return
        for connection in (self._data, self._replies):
            connection.close()
        os.close(self._lifeline)
        if wait:
            self._process.wait()
        else:
            threading.Thread(target=self._process.wait, name="writeback-reap", daemon=True).start()


def drive(environment: dm_env.Environment, policy: Callable[[dm_env.TimeStep], Any], writer: WriteBack,
          num_episodes: int, stop: threading.Event | None = None) -> int:
    """Plays `num_episodes` episodes through `writer` (fewer if `stop` is set: it is checked
    between episodes, so no episode is cut short); returns the number of environment steps."""
    steps = 0
    for _ in range(num_episodes):
        if stop is not None and stop.is_set():
            break
        timestep = environment.reset()
        writer.observe_first(timestep)
        while not timestep.last():
            action = policy(timestep)
            timestep = environment.step(action)
            writer.observe(action, timestep)
            steps += 1
    return steps
