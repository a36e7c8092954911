"""Where each episode of a version is stored, found from TFRecord headers or parquet footers alone.

Reading the header of a record (12 bytes) and seeking past its body, or a parquet file's footer,
costs nothing like decoding, so a version of thousands of episodes is indexed in milliseconds,
and an episode page reads exactly one record (one row group of a parquet shard). Versions are
immutable, so an index is built once per version and kept.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlstore.errors import StoreError
from rlstore.names import DatasetRef
from rlstore.numpy.decoding import RecordError, decode_episode
from rlstore.shard_formats import read_record_at, record_places
from rlstore.store import Store


@dataclass(frozen=True)
class EpisodeIndex:
    """(shard file, place) of every episode of one version, in manifest order: a byte offset in
    a TFRecord shard, a row number in a parquet one."""

    ref: DatasetRef
    places: list[tuple[Path, int]]

    def __len__(self) -> int:
        return len(self.places)


class Indexes:
    """Episode indexes of the versions a viewer has looked at, built on first use."""

    def __init__(self, store: Store):
        self.store = store
        self._built: dict[DatasetRef, EpisodeIndex] = {}
        self._lock = threading.Lock()

    def get(self, ref: DatasetRef) -> EpisodeIndex:
        with self._lock:
            if ref not in self._built:
                places = []
                for path in self.store.shard_paths(ref):
                    try:
                        with open(path, "rb") as stream:
                            places.extend((path, place) for place in record_places(stream, str(path)))
                    except (OSError, ValueError) as error:
                        raise StoreError(f"cannot read shard {path}: {error}") from None
                self._built[ref] = EpisodeIndex(ref, places)
            return self._built[ref]

    def episode(self, ref: DatasetRef, number: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """(flat steps, flat metadata) of episode `number` (manifest order) of `ref`."""
        index = self.get(ref)
        if not 0 <= number < len(index):
            raise StoreError(f"{ref} has no episode {number} (it has {len(index)})")
        path, place = index.places[number]
        try:
            with open(path, "rb") as stream:
                record = read_record_at(stream, place, str(path))
            return decode_episode(record, self.store.manifest(ref).schema)
        except (OSError, ValueError, RecordError) as error:
            raise StoreError(f"{ref}: episode {number} in {path}: {error}") from None
