"""Compaction while writing back: every K commits, on a thread of the write-back worker.

A long online run commits a small segment every few episodes. With `compact_every=K`, the
worker compacts the dataset (`rlstore.compaction`) after every K-th commit, on its own thread:
the commit path, and so the actors, never wait for it. At most one compaction runs at a time
(a K-th commit that finds one still running is skipped); commits that land meanwhile are kept,
because a publish rebases onto whatever version won, and the compaction only removes the
segments it copied. A failed compaction publishes nothing and is reported in the summary;
the run carries on.
"""
from __future__ import annotations

import threading

from rlstore.compaction import DEFAULT_TARGET_BYTES, compact
from rlstore.errors import describe
from rlstore.store import Store


class BackgroundCompactor:
    """Compacts `dataset` after every `every`-th commit it is told about."""

    def __init__(self, store: Store, dataset: str, every: int, target_bytes: int = DEFAULT_TARGET_BYTES):
        if every < 1:
            raise ValueError(f"compact_every must be >= 1, got {every}")
        self._store, self._dataset, self._every, self._target = store, dataset, every, target_bytes
        self._commits = 0
        self._thread: threading.Thread | None = None
        self.versions: list[int] = []
        self.errors: list[str] = []

    def committed(self) -> None:
        self._commits += 1
        if self._commits % self._every == 0 and not (self._thread and self._thread.is_alive()):
            self._thread = threading.Thread(target=self._run, name="rlstore-compactor", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Waits for a compaction in progress, so that the worker never exits in its middle."""
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        try:
            manifest = compact(self._store, self._dataset, self._target)
        except Exception as error:  # noqa: BLE001 - reported in the summary, never fatal to the run
            self.errors.append(describe(error))
            return
        if manifest is not None:
            self.versions.append(manifest.version)
