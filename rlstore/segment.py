"""Writing one segment: shards of encoded episodes (TFRecord or Parquet) plus TFDS metadata.

Shards are written by `ShardWriter` (no TensorFlow; Beam workers and online actors use it).
`finish_segment` runs once on the driver when every shard is closed: it gives the shards their
final TFDS names, writes `dataset_info.json` and `features.json`, and returns the segment record
that goes into the version manifest.

A segment may hold several TFDS splits (an RLDS source's train and val): each shard record
then names its `split` (none means train), shards are named `<dataset>-<split>.tfrecord-...`
and the TFDS metadata lists every split, so `tfds.builder_from_directories` over a version's
segments shows the source's splits with their episode counts.

The shard container is chosen per segment writer (`rlstore.shard_formats`: tfrecord or
parquet); shards are named `<dataset>-<split>.<format>-...`, the TFDS metadata declares the
file format and the segment record names it in `shard_format` (only when it is not tfrecord,
so records written before parquet existed read back the same).
"""
from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from rlstore.schema import Schema
from rlstore.shard_formats import PARQUET, TFRECORD, ParquetRecordWriter, check_format
from rlstore.stats import EpisodeStats
from rlstore.tfrecord import RecordWriter

SPLIT = "train"
FILENAME_TEMPLATE = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
_PENDING_SUFFIX = ".pending-shard"
SHARD_BYTES = 256 << 20  # a shard closes past this size: few files per version, each still quick to copy or re-read


class ShardWriter:
    """Writes encoded episodes into shard files inside a segment directory being built.

    A new shard starts when the current one passes `max_shard_bytes`; every closed shard is
    described by a record with its sha256, counts and episode statistics. A closed shard stays
    in `segment_dir`, fsynced, unless a `sink` takes it away: then `segment_dir` is only scratch
    space and `sink(path)` moves the file where it belongs (a bucket's staging area, see
    `rlstore.shard_targets`).
    """

    def __init__(self, segment_dir: str | os.PathLike, max_shard_bytes: int = SHARD_BYTES,
                 shard_format: str = TFRECORD, sink: Callable[[Path], None] | None = None):
        self.segment_dir = Path(segment_dir)
        self.max_shard_bytes = max_shard_bytes
        self.shard_format = check_format(shard_format)
        self._sink = sink
        self._stream = None
        self._writer: RecordWriter | ParquetRecordWriter | None = None
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

    def _open(self) -> RecordWriter | ParquetRecordWriter:
        if self._writer is None:
            name = f"{uuid.uuid4().hex}{_PENDING_SUFFIX}"
            self._stream = open(self.segment_dir / name, "wb")
            self._writer = (ParquetRecordWriter if self.shard_format == PARQUET else RecordWriter)(self._stream)
        return self._writer

    def close(self) -> list[dict[str, Any]]:
        """Closes the open shard (if any); returns the records of every shard closed so far."""
        if self._writer is not None:
            self._writer.finish()
            self._stream.flush()
            if self._sink is None:
                os.fsync(self._stream.fileno())
            self._stream.close()
            if self._sink is not None:
                self._sink(Path(self._stream.name))
            self.closed.append({
                "file": Path(self._stream.name).name,
                "sha256": self._writer.sha256.hexdigest(),
                "bytes": self._writer.num_bytes,
                "num_episodes": self._writer.num_records,
                "num_steps": self._steps,
                "stats": self._stats.to_json(),
                **({"shard_format": self.shard_format} if self.shard_format != TFRECORD else {}),
            })
            self._stream, self._writer = None, None
            self._stats, self._steps = EpisodeStats.empty(), 0
        return self.closed


def split_names(shards: Iterable[Mapping[str, Any]]) -> list[str]:
    """The splits of a segment's shard records (a record without "split" is in train), train first."""
    names = {shard.get("split", SPLIT) for shard in shards}
    return sorted(names, key=lambda name: (name != SPLIT, name))


def close_splits(writers: Mapping[str, "ShardWriter"]) -> list[dict[str, Any]]:
    """Closes one ShardWriter per split; returns every shard record, tagged with its split
    unless it is train (so single-split records stay as they always were)."""
    return [{**shard, **({"split": split} if split != SPLIT else {})}
            for split, writer in writers.items() for shard in writer.close()]


def check_split_name(name: str) -> str:
    """`name` if it can name a TFDS split and a shard file (letters, digits, '_'), else ValueError."""
    if not re.fullmatch(r"[A-Za-z0-9_]{1,64}", name):
        raise ValueError(f"split name {name!r} is not letters, digits and '_'")
    return name


def rename_shard(segment_dir: Path, file: str, final: str) -> None:
    """Renames a closed shard in the segment directory it was written in."""
    os.rename(segment_dir / file, segment_dir / final)


def finish_segment(
    segment_dir: str | os.PathLike,
    dataset: str,
    schema: Schema,
    shards: Iterable[Mapping[str, Any]],
    lineage: Mapping[str, Any],
    name_shard: Callable[[Path, str, str], None] | None = None,
) -> dict[str, Any]:
    """Names the shards as TFDS expects, writes TFDS metadata, returns the segment record.
    The shards' format is the one their writers recorded (all shards of a segment share it).

    `name_shard(segment_dir, file, final)` gives a shard its final name; by default it is renamed
    in `segment_dir`. A staging area whose workers put the shards in a bucket passes its own
    (`Staging.name_shard`): there the shards get their names when the segment is placed."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core import naming

    segment_dir = Path(segment_dir)
    shards = list(shards)
    formats = {shard.get("shard_format", TFRECORD) for shard in shards} or {TFRECORD}
    if len(formats) > 1:
        raise ValueError(f"a segment's shards must share one format, these are {', '.join(sorted(formats))}")
    (shard_format,) = formats
    template = naming.ShardedFileTemplate(data_dir=segment_dir, template=FILENAME_TEMPLATE,
                                          dataset_name=dataset, filetype_suffix=shard_format)
    named, split_infos = [], []
    for split in split_names(shards):
        members = sorted((s for s in shards if s.get("split", SPLIT) == split), key=lambda s: s["file"])
        for index, shard in enumerate(members):
            final = f"{dataset}-{split}.{shard_format}-{index:05d}-of-{len(members):05d}"
            (name_shard or rename_shard)(segment_dir, shard["file"], final)
            named.append({**shard, "file": final})
        split_infos.append(tfds.core.SplitInfo(
            name=split, shard_lengths=[s["num_episodes"] for s in members], num_bytes=sum(s["bytes"] for s in members),
            filename_template=template.replace(split=split)))
    tfds.folder_dataset.write_metadata(data_dir=segment_dir, features=schema.tfds_features(), split_infos=split_infos,
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
        "shards": [{k: s[k] for k in ("file", "sha256", "bytes", "num_episodes", "num_steps", "split") if k in s}
                   for s in named],
        "metadata_files": metadata,
        "stats": stats.to_json(),
        "lineage": dict(lineage),
        **({"shard_format": shard_format} if shard_format != TFRECORD else {}),
    }
