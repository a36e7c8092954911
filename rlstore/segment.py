"""Writing one segment: TFRecord shards of encoded episodes plus TFDS metadata.

Shards are written by `ShardWriter` (no TensorFlow; Beam workers and online actors use it).
`finish_segment` runs once on the driver when every shard is closed: it gives the shards their
final TFDS names, writes `dataset_info.json` and `features.json`, and returns the segment record
that goes into the version manifest.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping

from rlstore.schema import Schema
from rlstore.stats import EpisodeStats
from rlstore.tfrecord import RecordWriter

SPLIT = "train"
FILENAME_TEMPLATE = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
_PENDING_SUFFIX = ".pending-shard"


class ShardWriter:
    """Writes encoded episodes into shard files inside a segment directory being built.

    A new shard starts when the current one passes `max_shard_bytes`; every closed shard is
    described by a record with its sha256, counts and episode statistics.
    """

    def __init__(self, segment_dir: str | os.PathLike, max_shard_bytes: int = 256 << 20):
        self.segment_dir = Path(segment_dir)
        self.max_shard_bytes = max_shard_bytes
        self._stream = None
        self._writer: RecordWriter | None = None
        self._stats = EpisodeStats.empty()
        self._steps = 0
        self.closed: list[dict[str, Any]] = []

    def write(self, record: bytes, num_steps: int, episode_return: float) -> None:
        self._open().write(record)
        self._stats.add(episode_return, num_steps)
        self._steps += num_steps
        if self._writer.num_bytes >= self.max_shard_bytes:
            self.close()

    def copy(self, records: Iterable[bytes], num_steps: int, stats: EpisodeStats) -> None:
        """Appends episodes that are already encoded (a whole segment's, when compacting) with
        their merged statistics; a shard only ends between such groups."""
        writer = self._open()
        for record in records:
            writer.write(record)
        self._stats = self._stats.merge(stats)
        self._steps += num_steps
        if writer.num_bytes >= self.max_shard_bytes:
            self.close()

    def _open(self) -> RecordWriter:
        if self._writer is None:
            name = f"{uuid.uuid4().hex}{_PENDING_SUFFIX}"
            self._stream = open(self.segment_dir / name, "wb")
            self._writer = RecordWriter(self._stream)
        return self._writer

    def close(self) -> list[dict[str, Any]]:
        """Closes the open shard (if any); returns the records of every shard closed so far."""
        if self._writer is not None:
            self._stream.flush()
            os.fsync(self._stream.fileno())
            self._stream.close()
            self.closed.append({
                "file": Path(self._stream.name).name,
                "sha256": self._writer.sha256.hexdigest(),
                "bytes": self._writer.num_bytes,
                "num_episodes": self._writer.num_records,
                "num_steps": self._steps,
                "stats": self._stats.to_json(),
            })
            self._stream, self._writer = None, None
            self._stats, self._steps = EpisodeStats.empty(), 0
        return self.closed


def finish_segment(
    segment_dir: str | os.PathLike,
    dataset: str,
    schema: Schema,
    shards: Iterable[Mapping[str, Any]],
    lineage: Mapping[str, Any],
) -> dict[str, Any]:
    """Names the shards as TFDS expects, writes TFDS metadata, returns the segment record."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core import naming

    segment_dir = Path(segment_dir)
    shards = sorted(shards, key=lambda s: s["file"])
    total = len(shards)
    named = []
    for index, shard in enumerate(shards):
        final = f"{dataset}-{SPLIT}.tfrecord-{index:05d}-of-{total:05d}"
        os.rename(segment_dir / shard["file"], segment_dir / final)
        named.append({**shard, "file": final})
    template = naming.ShardedFileTemplate(data_dir=segment_dir, template=FILENAME_TEMPLATE,
                                          dataset_name=dataset, split=SPLIT, filetype_suffix="tfrecord")
    split = tfds.core.SplitInfo(name=SPLIT, shard_lengths=[s["num_episodes"] for s in named],
                                num_bytes=sum(s["bytes"] for s in named), filename_template=template)
    tfds.folder_dataset.write_metadata(data_dir=segment_dir, features=schema.tfds_features(), split_infos=[split],
                                       filename_template=template, check_data=False,
                                       description=f"rlstore segment of dataset {dataset}")
    from rlstore.store import sha256_file

    metadata = [{"file": p.name, "sha256": sha256_file(p), "bytes": p.stat().st_size}
                for p in sorted(segment_dir.glob("*.json"))]
    stats = EpisodeStats.empty()
    for shard in named:
        stats = stats.merge(EpisodeStats.from_json(shard["stats"]))
    return {
        "id": segment_dir.name,
        "path": str(segment_dir),
        "num_episodes": sum(s["num_episodes"] for s in named),
        "num_steps": sum(s["num_steps"] for s in named),
        "shards": [{k: s[k] for k in ("file", "sha256", "bytes", "num_episodes", "num_steps")} for s in named],
        "metadata_files": metadata,
        "stats": stats.to_json(),
        "lineage": dict(lineage),
    }
