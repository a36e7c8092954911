"""The Beam pieces of the ingest pipeline: ingest a batch of work items, merge the batches' results.

    batches of work items (JSON text) → IngestBatch (read, check, encode, write shards, pre-combine the
    quality report) → CombineGlobally(ResultFn) → write_result

The shape is chosen to run unchanged on every runner, the DaskRunner included, whose Beam
2.77 translation keeps only what `process` emits (output from `finish_bundle` is dropped),
hands every consumer of a multi-output ParDo all of its outputs, and computes only the
pipeline's last transform. So one DoFn call closes the shards it wrote and emits everything
about its batch as one `Part`, and a single combine funnels the parts into the result.

DoFns run on workers and import no TensorFlow of their own (a source format may). Bad input
raises BadInputError under --on-error=fail; its message survives Beam's re-raising on the
driver with file/episode/step/field intact. Under --on-error=skip the episode becomes a reject
line instead, and the rest of the batch goes on.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import apache_beam as beam
import numpy as np

from rlstore.pipelines.notes import pop_notes
from rlstore.pipelines.quality import QualityAccumulator, QualityCombineFn
from rlstore.episode import Episode
from rlstore.errors import BadInputError, Location, StorageError
from rlstore.nest import flatten
from rlstore.schema import Schema
from rlstore.segment import SPLIT, ShardWriter, close_splits
from rlstore.shard_targets import BucketShardTarget, ShardTarget

ON_ERROR = ("fail", "skip")


@dataclass
class Part:
    """What one batch (or several, merged) produced."""

    quality: QualityAccumulator
    shards: list[dict[str, Any]] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)


def reject_line(error: BadInputError, episode: Episode | None = None) -> dict[str, Any]:
    """One line of rejects.jsonl: where the bad episode is, why, and whether it holds NaN/inf."""
    return {"file": error.location.file, "episode": error.location.episode, "step": error.location.step,
            "field": error.location.field, "reason": error.reason, "error": error.readable(),
            "non_finite": episode is not None and _has_non_finite(episode)}


def _has_non_finite(episode: Episode) -> bool:
    steps = episode.get("steps")
    leaves = flatten(steps).values() if isinstance(steps, Mapping) else ()
    for value in leaves:
        value = np.asarray(value)
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            return True
    return False


def reject_order(line: Mapping[str, Any]) -> tuple:
    episode = line.get("episode")
    return line.get("file") or "", episode if isinstance(episode, int) else -1, str(episode)


class IngestBatch(beam.DoFn):
    """Reads a batch of work items, checks and encodes each episode into the batch's own shards."""

    def __init__(self, format_name: str, format_options: Mapping[str, Any], schema: Mapping[str, Any],
                 target: ShardTarget | BucketShardTarget, max_shard_bytes: int, on_error: str,
                 progress_dir: str | None, shard_format: str = "tfrecord"):
        self._shard_format = shard_format
        self._format_name = format_name
        self._format_options = dict(format_options)
        self._schema_json = dict(schema)
        self._target = target
        self._max_shard_bytes = max_shard_bytes
        self._skip = on_error == "skip"
        self._progress_dir = progress_dir
        self._quality = QualityCombineFn(schema)

    def setup(self) -> None:
        from rlstore.pipelines.sources import get_format
        from rlstore.pipelines.worker_exit import exit_fast_after_harness

        exit_fast_after_harness()  # a DirectRunner worker process skips Python's slow finalization
        self._format = get_format(self._format_name, self._format_options)
        self._schema = Schema.from_json(self._schema_json)

    def process(self, batch_json: str) -> Iterator[Part]:
        batch: Sequence[Mapping[str, Any]] = json.loads(batch_json)
        writers: dict[str, ShardWriter] = {}
        part = Part(self._quality.create_accumulator())
        for item in batch:
            split = item.get("split", SPLIT)  # a source's splits (RLDS train/val) stay apart
            if split not in writers:
                writers[split] = self._target.writer(self._max_shard_bytes, self._shard_format)
            self._ingest(item, writers[split], part)
            try:
                part.sources.extend(source.to_json() for source in self._format.source_files(item))
            except OSError as error:
                raise unreadable(error, item) from None
            if self._progress_dir and os.path.isdir(self._progress_dir):  # not on a worker on another host
                with storing(self._progress_dir):
                    Path(self._progress_dir, f"{os.getpid()}-{id(item)}-{hash(json.dumps(item, sort_keys=True))}").touch()
        with storing(self._target.location):
            part.shards = close_splits(writers)
        part.quality = self._quality.compact(part.quality)
        yield part

    def _ingest(self, item: Mapping[str, Any], writer: ShardWriter, part: Part) -> None:
        episodes = self._format.read(item)
        while True:
            try:
                try:
                    where, episode = next(episodes)
                except OSError as error:  # e.g. the input was deleted while the pipeline ran
                    raise unreadable(error, item) from None
            except StopIteration:
                return
            except BadInputError as error:  # the reader cannot go on with this item
                if not self._skip:
                    raise
                part.rejects.append(reject_line(error))
                return
            notes = pop_notes(episode)
            try:
                length = self._schema.check(episode, where)
            except BadInputError as error:
                if not self._skip:
                    raise
                part.rejects.append(reject_line(error, episode))
                continue
            episode_return = float(np.asarray(episode["steps"]["reward"], np.float64).reshape(length, -1).sum())
            with storing(self._target.location):
                writer.write(self._schema.encode(episode), length, episode_return)
            self._quality.add_input(part.quality, (where, episode, notes, length, episode_return))


class ResultFn(beam.CombineFn):
    """Merges every batch's Part into the ingest's result, finishing the quality report."""

    def __init__(self, schema: Mapping[str, Any]):
        self._quality = QualityCombineFn(schema)

    def create_accumulator(self) -> Part:
        return Part(self._quality.create_accumulator())

    def add_input(self, acc: Part, part: Part) -> Part:
        return self.merge_accumulators([acc, part])

    def merge_accumulators(self, parts) -> Part:
        parts = list(parts)
        return Part(self._quality.merge_accumulators([p.quality for p in parts]),
                    [s for p in parts for s in p.shards], [s for p in parts for s in p.sources],
                    [r for p in parts for r in p.rejects])

    def extract_output(self, acc: Part) -> dict[str, Any]:
        return {"shards": acc.shards, "sources": sorted(acc.sources, key=lambda s: s["path"]),
                "rejects": sorted(acc.rejects, key=reject_order), "report": self._quality.extract_output(acc.quality)}


def write_result(result: Mapping[str, Any], target: ShardTarget | BucketShardTarget) -> None:
    """Writes the pipeline's outcome for the driver, which publishes once the pipeline is done."""
    target.put_result(json.dumps(result).encode())


def unreadable(error: OSError, item: Mapping[str, Any]) -> BadInputError:
    """An input file the pipeline could not read (gone, unreadable), named as bad input."""
    return BadInputError(f"cannot read the input: {error.strerror or error}",
                         Location(file=error.filename or item.get("path")))


@contextmanager
def storing(path: str | os.PathLike) -> Iterator[None]:
    """Turns an OSError while writing into the store (a full disk, a read-only or size-limited
    file system) into a StorageError naming the file, which reaches the driver intact."""
    try:
        yield
    except OSError as error:
        raise StorageError(f"cannot write into the store: {error.strerror or error}",
                           Location(file=error.filename or str(path))) from None
