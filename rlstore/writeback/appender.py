"""The store side of write-back: finished episodes become new segments and new versions.

One appender holds one locked staging area for its whole life (opening it removes what dead
writers left behind). Episodes are encoded into a segment being built there; every
`commit_every` episodes, and at close, the segment is finished and published as version N+1 =
version N + this segment, through `Store.publish`. Episodes come in batches (`EpisodeBatch`),
checked and encoded a batch at a time. So a crash at any moment loses at most the
episodes since the last commit and never touches a published version, and concurrent writers
get distinct versions without losing each other's segments (both are the store's guarantees).
"""
from __future__ import annotations

from typing import Any, Mapping

from rlstore.encoding import encode_episodes
from rlstore.manifest import Manifest
from rlstore.publishing import SegmentBuilder, check_appendable, dataset_shard_format
from rlstore.schema import Schema
from rlstore.shard_formats import PARQUET, frame_encoding
from rlstore.store import Store
from rlstore.writeback.stream import EpisodeBatch

PIPELINE_NAME = "rlstore.writeback"


class EpisodeAppender:
    """Appends episodes to `dataset`, publishing a version every `commit_every` episodes.

    `lineage` goes into every version this appender publishes, plus `run_episodes`: the
    half-open range of the run's episode indices that version added. With `frame_stack` k > 1 the
    episodes' observations are single frames and the schema says readers stack k of them
    (`rlstore.frames`), as a `dqn_replay` ingest's does, in the same shard format (parquet of
    raw frames for a new dataset; an existing dataset's own otherwise).
    """

    def __init__(self, store: Store, dataset: str, lineage: Mapping[str, Any], commit_every: int,
                 frame_stack: int = 1):
        self._store = store
        self._dataset = dataset
        self._lineage = dict(lineage)
        self._commit_every = commit_every
        self._frame_stack = frame_stack
        self._staging = store.staging(dataset)
        self._schema: Schema | None = None
        self._shard_format: str | None = None  # None: the dataset's (tfrecord for a new one)
        self._segment: SegmentBuilder | None = None
        self.committed = 0

    def add(self, batch: EpisodeBatch) -> list[Manifest]:
        """Checks, encodes and writes a batch of finished episodes; returns the manifests of the
        versions published on the way (one per `commit_every` episodes)."""
        if self._schema is None:
            self._schema = Schema.derive(batch.episode(0))
            if self._frame_stack > 1:  # where a dqn_replay ingest puts frames: parquet, unless the dataset is TFRecord
                self._shard_format = dataset_shard_format(self._store, self._dataset) or PARQUET
                self._schema = self._schema.with_frames("observation", self._frame_stack,
                                                        frame_encoding(self._shard_format))
            check_appendable(self._store, self._dataset, self._schema)  # refused before anything is written
        batch.check(self._schema)
        records = encode_episodes(self._schema, batch.steps, batch.starts, batch.lengths, {"episode_id": batch.ids})
        manifests = []
        for record, length, episode_return in zip(records, batch.lengths.tolist(), batch.returns().tolist()):
            if self._segment is None:
                self._segment = SegmentBuilder(self._store, self._dataset, self._staging, self._schema,
                                               shard_format=self._shard_format)
            self._segment.write(record, length, episode_return)
            if self._segment.episodes >= self._commit_every:
                manifests.append(self.commit())
        return manifests

    def commit(self) -> Manifest | None:
        """Publishes the episodes written since the last commit, if any, as a new version."""
        if self._segment is None:
            return None
        pending = self._segment.episodes
        manifest = self._segment.publish({**self._lineage, "run_episodes": [self.committed, self.committed + pending]})
        self.committed += pending
        self._segment = None
        return manifest

    def close(self, commit: bool = True) -> Manifest | None:
        """Commits what is pending (unless `commit` is False) and removes the staging area."""
        try:
            return self.commit() if commit else None
        finally:
            self._staging.close()
