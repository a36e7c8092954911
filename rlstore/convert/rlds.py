"""One plain TFDS directory holding every episode of a version, for people who want a single
directory (`tfds.builder_from_directory(out)` reads it with no rlstore code).

A version is already RLDS in TFDS's format, spread over segments; this copies the stored episode
records unchanged (no re-encoding: the bytes are the version's) into fresh shards of one
directory, in the version's shard format (TFRecord or Parquet), and writes its TFDS metadata, each in its split (train, val, ...). Nothing is lost, so
there are no warnings.
"""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Callable

import numpy as np

from rlstore.convert.common import ConvertReport, refuse_existing
from rlstore.names import DatasetRef
from rlstore.numpy.decoding import decode_episode
from rlstore.numpy.records import episode_records
from rlstore.segment import SPLIT, ShardWriter, close_splits, finish_segment
from rlstore.shard_formats import segment_format
from rlstore.store import Store, shard_path


def write_rlds(store: Store, ref: DatasetRef, out: Path, report: ConvertReport,
               progress: Callable[[int], None]) -> None:
    refuse_existing(out)
    manifest = store.manifest(ref)
    partial = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.partial")
    partial.mkdir(parents=True)
    try:
        writers: dict[str, ShardWriter] = {}
        for segment in manifest.segments:
            directory = store.segment_dir(manifest.name, segment)
            for shard in segment["shards"]:
                split = shard.get("split", SPLIT)
                writer = writers.get(split) or writers.setdefault(split, ShardWriter(partial,
                                                                                    shard_format=segment_format(segment)))
                for record in episode_records([shard_path(directory, shard)], shuffle=False, rng=None, shuffle_buffer=0):
                    steps, _ = decode_episode(record.data, manifest.schema)
                    length = len(steps["is_last"])
                    writer.write(record.data, length, float(np.sum(steps["reward"])))
                    report.episodes += 1
                    report.steps += length
                    progress(1)
        finish_segment(partial, manifest.name, manifest.schema, close_splits(writers), {"converted_from": str(ref)})
        partial.rename(out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
