"""Shard-format conversion: the latest version's episodes again, in the other container.

    manifest = convert_shards(store, "pong", to="tfrecord")   # or "parquet"

A version keeps one shard format (stock TFDS reads all of its segment directories with one file
adapter), so the new version replaces every segment by one holding the same episodes, in order,
split by split, in shards of `to`; older versions and their segments are untouched. Records are
copied byte for byte (every source shard's sha256 is checked first, as compaction does), except
frames stored once: raw in parquet (the zstd column compresses an episode's frames together),
zlib per frame in TFRecord (`rlstore.shard_formats.frame_encoding`). Those episodes are decoded
and encoded again with the frame encoding of `to`, which changes the version's schema in that
field's encoding only; the readers and stock TFDS give the same values either way.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from rlstore.compaction import segment_records
from rlstore.encoding import encode_episodes
from rlstore.errors import StoreError
from rlstore.manifest import Manifest
from rlstore.numpy.decoding import RecordError, decode_episode
from rlstore.schema import Schema
from rlstore.segment import SPLIT, ShardWriter, close_splits, finish_segment
from rlstore.shard_formats import check_format, frame_encoding, segment_format
from rlstore.stats import EpisodeStats
from rlstore.store import Store

PIPELINE_NAME = "rlstore.convert_shards"


def convert_shards(store: Store, name: str, to: str, progress: Callable[[int], None] | None = None) -> Manifest:
    """Publishes the latest version of dataset `name` again with every shard in format `to`
    ("tfrecord" or "parquet"); `progress(n)` is called as each source segment is converted."""
    try:
        to = check_format(to)
    except ValueError as error:
        raise StoreError(str(error)) from None
    source = store.manifest(name)
    if all(segment_format(segment) == to for segment in source.segments):
        raise StoreError(f"{name}@{source.version} is already stored as {to} shards")
    schema = _schema_for(source.schema, to)
    with store.staging(name) as staging:
        records = []
        for segment in source.segments:
            directory = staging.new_segment_dir()
            writers: dict[str, ShardWriter] = {}
            for shard, episodes in segment_records(store, name, segment):
                split = shard.get("split", SPLIT)
                writer = writers.setdefault(split, ShardWriter(directory, shard_format=to))
                if schema != source.schema:
                    episodes = [_recoded(record, source.schema, schema, store.segment_dir(name, segment), i)
                                for i, record in enumerate(episodes)]
                writer.copy(episodes, shard["num_steps"], EpisodeStats.empty())
            lineage = {"pipeline": PIPELINE_NAME, "converted_from": segment["id"]}
            record = finish_segment(directory, name, schema, close_splits(writers), lineage, staging.name_shard)
            records.append({**record, "stats": segment["stats"]})  # the same episodes: the same statistics
            if progress:
                progress(1)
        lineage = {"pipeline": PIPELINE_NAME, "options": {"shard_format": to},
                   "converted_from": {"version": source.version,
                                      "shard_formats": sorted({segment_format(s) for s in source.segments})}}
        return store.publish(name, staging, records, schema, lineage, removed=[s["id"] for s in source.segments])


def _schema_for(schema: Schema, shard_format: str) -> Schema:
    """`schema` with its frames (if any) in the encoding shards of `shard_format` store them in."""
    observation = schema.steps.get("observation")
    if observation is None or observation.stack <= 1:
        return schema
    return schema.with_frames("observation", observation.stack, frame_encoding(shard_format))


def _recoded(record: bytes, source: Schema, target: Schema, where, index: int) -> bytes:
    try:
        steps, metadata = decode_episode(record, source)
    except RecordError as error:
        raise StoreError(f"{where}: episode {index} does not decode: {error}") from None
    length = len(steps["is_first"])
    return encode_episodes(target, steps, np.zeros(1, np.int64), np.array([length]),
                           {key: [value] for key, value in metadata.items()})[0]
