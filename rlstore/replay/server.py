"""A Reverb server whose tables are filled from a store version, checkpointed into the store.

Checkpoints live with the dataset they were filled from:

    <root>/<dataset>/replay_checkpoints/v<N>-<layout digest>/
        layout.json                 the dataset, version and `Layout` (written at the first checkpoint)
        reverb/                     Reverb's checkpointer root (it treats every entry as a checkpoint)
            <timestamp>/            one Reverb checkpoint, in Reverb's own TFRecord format:
                tables.tfrecord     each table's options and rate-limiter state
                items.tfrecord      every item: its table, key, priority, times sampled, chunk slices
                chunks.tfrecord     the data the items refer to
                DONE                written last: a directory without it is an interrupted checkpoint

A checkpoint holds everything the tables held, items written back by online actors included.
Reverb keeps only the newest complete checkpoint per directory and ignores incomplete ones, so a
crash while checkpointing loses nothing already saved. The directory is keyed by version and
layout because a Reverb checkpoint restores a table's options too: a server with another
layout, or over another version, never picks up a foreign checkpoint.

Starting a server over (version, layout) restores the newest checkpoint of that key if there
is one, and bulk-loads the version otherwise (`restore=False` discards old checkpoints of the
key first). Run at most one server per key at a time: checkpoints are not locked.

`extra_tables` are tables that start empty and are not filled from the version, e.g. an online
agent's own replay next to its demonstrations (`tables.online_table`). Their names join the
checkpoint key (`v<N>-<digest>+<name>...`), so such a server restores only its own checkpoints.
"""
from __future__ import annotations

import json
import shutil
import sys
import threading
from pathlib import Path
from typing import Any, Sequence

import reverb

from rlstore.names import DatasetRef
from rlstore.replay.loading import load_version
from rlstore.replay.tables import Layout, ReplayError, make_tables
from rlstore.store import Store

CHECKPOINTS = "replay_checkpoints"
_REVERB = "reverb"
_DONE = "DONE"


def checkpoint_dir(store: Store, ref: str | DatasetRef, layout: Layout) -> Path:
    """Where checkpoints of a server over (version, layout) go."""
    ref = store.resolve(ref)
    return store.dataset_dir(ref.name) / CHECKPOINTS / f"v{ref.version}-{layout.digest()}"


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest complete Reverb checkpoint under `checkpoint_dir(...)` (Reverb names them by time)."""
    root = directory / _REVERB
    if not root.is_dir():
        return None
    complete = sorted(path for path in root.iterdir() if (path / _DONE).is_file())
    return complete[-1] if complete else None


def checkpointer_at(directory: Path) -> reverb.checkpointers.DefaultCheckpointer:
    """Reverb's checkpointer writing under `directory` (where `latest_checkpoint` looks)."""
    return reverb.checkpointers.DefaultCheckpointer(str(directory / _REVERB))


class ReplayServer:
    """A Reverb server over one store version: bulk-loaded or restored, optionally checkpointed
    every `checkpoint_every` seconds (and once more when closed).

    Actors and learners in any process connect with `reverb.Client(server.address)`.
    """

    def __init__(
        self,
        store: Store,
        ref: str | DatasetRef,
        layout: Layout = Layout(),
        *,
        port: int | None = None,
        restore: bool = True,
        checkpoint_every: float | None = None,
        extra_tables: Sequence[reverb.Table] = (),
    ):
        self.ref = store.resolve(ref)
        self.layout = layout
        self.checkpoint_dir = checkpoint_dir(store, self.ref, layout)
        if extra_tables:
            suffix = "".join(f"+{table.name}" for table in extra_tables)
            self.checkpoint_dir = self.checkpoint_dir.with_name(self.checkpoint_dir.name + suffix)
        if not restore:
            shutil.rmtree(self.checkpoint_dir / _REVERB, ignore_errors=True)
        self.restored_from = latest_checkpoint(self.checkpoint_dir)
        checkpointer = checkpointer_at(self.checkpoint_dir)
        try:
            self._server = reverb.Server(make_tables(store.manifest(self.ref), layout) + list(extra_tables), port=port,
                                         checkpointer=checkpointer)
        except (ValueError, RuntimeError) as error:
            hint = f" (is port {port} in use?)" if port and "BuildAndStart" in str(error) else ""
            where = f", restoring {self.restored_from}" if self.restored_from else ""
            raise ReplayError(f"cannot start a Reverb server{where}: {error}{hint}") from None
        self.port: int = self._server.port
        self.address = f"localhost:{self.port}"
        self.client = reverb.Client(self.address)
        self.loaded: dict[str, int] = {}
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self.checkpoint_every = checkpoint_every
        try:
            if self.restored_from is None:
                self.loaded = load_version(self.address, store, self.ref, layout)
        except BaseException:
            self.close(final_checkpoint=False)
            raise
        if checkpoint_every:
            self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="replay-checkpoints", daemon=True)
            self._checkpointer.start()

    def info(self) -> dict[str, Any]:
        """Reverb's `TableInfo` of every table, by name."""
        return self.client.server_info()

    def checkpoint(self) -> Path:
        """Saves every table into the store; returns the checkpoint's directory."""
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        description = self.checkpoint_dir / "layout.json"
        if not description.exists():
            description.write_text(json.dumps({"dataset": self.ref.name, "version": self.ref.version,
                                               "layout": self.layout.to_json()}, indent=1))
        return Path(self.client.checkpoint())

    def _checkpoint_loop(self) -> None:
        while not self._stop.wait(self.checkpoint_every):
            try:
                self.checkpoint()
            except Exception as error:  # a failed periodic checkpoint must not kill the server
                print(f"warning: replay checkpoint failed: {error}", file=sys.stderr)

    def close(self, final_checkpoint: bool | None = None) -> Path | None:
        """Stops the server; checkpoints first if asked (default: when checkpointing periodically)."""
        if self._stop.is_set():
            return None
        self._stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join()
        if final_checkpoint is None:
            final_checkpoint = bool(self.checkpoint_every)
        saved = self.checkpoint() if final_checkpoint else None
        server, self._server = self._server, None
        server.stop()
        del server  # Reverb's Server.__del__ must run now, not in a half torn-down interpreter
        return saved

    def __enter__(self) -> "ReplayServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
