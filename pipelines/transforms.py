"""The Beam DoFns of the ingest pipeline: read and check episodes, write shards, collect results.

They run on workers, so they import no TensorFlow of their own (a source format may, e.g. to
decode an existing TFDS dataset). Failures raise BadInputError, whose message survives Beam's
re-raising on the driver with its file/episode/step/field intact.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

import apache_beam as beam
import numpy as np
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from rlstore.schema import Schema
from rlstore.segment import ShardWriter

SOURCES_TAG = "sources"


class ReadEpisodes(beam.DoFn):
    """Reads one work item, checks each episode against the schema and encodes it."""

    def __init__(self, format_name: str, format_options: Mapping[str, Any], schema: Mapping[str, Any],
                 progress_dir: str | None):
        self._format_name = format_name
        self._format_options = dict(format_options)
        self._schema_json = dict(schema)
        self._progress_dir = progress_dir

    def setup(self) -> None:
        from pipelines.sources import get_format

        self._format = get_format(self._format_name, self._format_options)
        self._schema = Schema.from_json(self._schema_json)

    def process(self, item: Mapping[str, Any]) -> Iterator[Any]:
        for where, episode in self._format.read(item):
            length = self._schema.check(episode, where)
            reward = np.asarray(episode["steps"]["reward"], dtype=np.float64)
            yield self._schema.encode(episode), length, float(reward.reshape(length, -1).sum())
        for source in self._format.source_files(item):
            yield beam.pvalue.TaggedOutput(SOURCES_TAG, source.to_json())
        if self._progress_dir:
            Path(self._progress_dir, f"{os.getpid()}-{id(item)}-{hash(json.dumps(item, sort_keys=True))}").touch()


class WriteShards(beam.DoFn):
    """Writes a bundle's encoded episodes into shard files of the segment being built."""

    def __init__(self, segment_dir: str, max_shard_bytes: int):
        self._segment_dir = segment_dir
        self._max_shard_bytes = max_shard_bytes

    def start_bundle(self) -> None:
        self._writer = ShardWriter(self._segment_dir, self._max_shard_bytes)

    def process(self, encoded: tuple[bytes, int, float]) -> None:
        self._writer.write(*encoded)

    def finish_bundle(self) -> Iterator[WindowedValue]:
        for record in self._writer.close():
            yield WindowedValue(record, MIN_TIMESTAMP, [GlobalWindow()])


def write_result(_: Any, path: str, shards: list, sources: list) -> None:
    """Writes the pipeline's outcome for the driver, which publishes once the pipeline is done."""
    temporary = f"{path}.tmp"
    with open(temporary, "w") as stream:
        json.dump({"shards": shards, "sources": sorted(sources, key=lambda s: s["path"])}, stream)
    os.replace(temporary, path)
