"""Staging → segment → published version: the one path by which episodes become a version.

Every writer does the same three things: it holds a locked staging area of the dataset
(`Store.staging`), builds a segment there (shards of encoded episodes by `ShardWriter`, in this
process or in Beam's workers), then finishes the segment (TFDS shard names and metadata,
`finish_segment`) and publishes it as the next version (`Store.publish`). Ingest, write-back, compaction,
the tests and the benchmarks all go through here, so the order of those steps (what must be on
disk before a version may name it) is written once.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from rlstore.episode import Episode
from rlstore.errors import StoreError
from rlstore.manifest import Manifest
from rlstore.schema import Schema
from rlstore.segment import SHARD_BYTES, ShardWriter, finish_segment
from rlstore.shard_formats import TFRECORD, segment_format
from rlstore.stats import EpisodeStats
from rlstore.store import Staging, Store


def check_appendable(store: Store, dataset: str, schema: Schema) -> None:
    """Raises StoreError unless episodes of `schema` may become the next version of `dataset`.
    `Store.publish` checks again; this refuses before any work is done."""
    if store.versions(dataset):
        problem = store.manifest(dataset).schema.difference(schema)
        if problem:
            raise StoreError(f"cannot append to {dataset}: {problem}")


def dataset_shard_format(store: Store, dataset: str) -> str | None:
    """The shard format of `dataset`'s latest version (None for a dataset not written yet):
    what an append must write, since a version's segments share one format."""
    if not store.versions(dataset):
        return None
    added = store.manifest(dataset).added
    return segment_format(added[0]) if added else TFRECORD


def publish_segment(store: Store, dataset: str, staging: Staging, directory: str | os.PathLike, schema: Schema,
                    shards: Iterable[Mapping[str, Any]], lineage: Mapping[str, Any],
                    report: Mapping[str, Any] | None = None) -> Manifest:
    """Finishes the segment built in `directory` (inside `staging`) from its closed `shards` and
    publishes it as the next version of `dataset`; `lineage` is the segment's and the version's."""
    record = finish_segment(directory, dataset, schema, shards, lineage, staging.name_shard)
    return store.publish(dataset, staging, [record], schema, lineage, report=report)


class SegmentBuilder:
    """Encoded episodes into one new segment of `dataset` in `staging`, published by `publish`.
    Its shards take `shard_format`, by default the dataset's own (tfrecord for a new dataset)."""

    def __init__(self, store: Store, dataset: str, staging: Staging, schema: Schema, max_shard_bytes: int = SHARD_BYTES,
                 shard_format: str | None = None):
        self._store, self._dataset, self._staging, self._schema = store, dataset, staging, schema
        self.directory: Path = staging.new_segment_dir()
        shard_format = shard_format or dataset_shard_format(store, dataset) or TFRECORD
        self._writer = ShardWriter(self.directory, max_shard_bytes, shard_format)
        self.episodes = 0

    def write(self, record: bytes, num_steps: int, episode_return: float) -> None:
        """Adds one encoded episode (`Schema.encode`, `rlstore.encoding.encode_episodes`)."""
        self._writer.write(record, num_steps, episode_return)
        self.episodes += 1

    def copy(self, records: Iterable[bytes], num_steps: int, stats: EpisodeStats) -> None:
        """Adds episodes already encoded and summed up (a whole segment's, when compacting)."""
        self._writer.copy(records, num_steps, stats)

    def finish(self, lineage: Mapping[str, Any]) -> dict[str, Any]:
        """Closes the shards and finishes the segment; returns its record, for a `Store.publish`
        of several segments at once."""
        return finish_segment(self.directory, self._dataset, self._schema, self._writer.close(), lineage,
                              self._staging.name_shard)

    def publish(self, lineage: Mapping[str, Any], report: Mapping[str, Any] | None = None) -> Manifest:
        """Closes the shards and publishes the segment as the next version of the dataset."""
        return publish_segment(self._store, self._dataset, self._staging, self.directory, self._schema,
                               self._writer.close(), lineage, report)


def publish_episodes(store: Store, dataset: str, episodes: Sequence[Episode], lineage: Mapping[str, Any],
                     max_shard_bytes: int = SHARD_BYTES) -> Manifest:
    """Checks, encodes and publishes in-memory episodes as one new segment and version of `dataset`
    (its schema derived from the first episode; appending needs the dataset's schema)."""
    schema = Schema.derive(episodes[0])
    check_appendable(store, dataset, schema)
    with store.staging(dataset) as staging:
        segment = SegmentBuilder(store, dataset, staging, schema, max_shard_bytes)
        for episode in episodes:
            length = schema.check(episode)
            segment.write(schema.encode(episode), length, float(np.sum(episode["steps"]["reward"])))
        return segment.publish(lineage)
