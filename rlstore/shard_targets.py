"""Where the workers of one writer put the shards of the segment it builds, and its result.

A writer (an ingest's driver) gets a target from its staging area (`Staging.shard_target`) and
hands it to its Beam workers, pickled with the DoFn:

- `ShardTarget`, for a store in a directory: shards go straight into the segment directory in
  the writer's staging area, which every worker sees (the DirectRunner's processes, or a
  cluster sharing the file system).
- `BucketShardTarget`, for a store in a bucket: a worker writes each shard in its own temporary
  directory and, once the shard is closed, uploads it into the writer's staging area in the
  bucket (`<dataset>/staging/<token>/<segment>/<file>`) and deletes its copy. So a cluster's
  shard bytes never pass through the driver, which then publishes by naming and placing them
  with server-side copies (`RemoteStore._place_segment`) and claiming the version. Workers
  upload under the writer's lease: if the writer dies, `gc` removes the whole staging area,
  uploaded shards included, once the lease has expired.

The pipeline's result (shard records and the quality report, a few kilobytes) is written by
whichever worker runs the last step, the same way: `put_result` on a worker, `result` on the
driver.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from rlstore.errors import Location, StorageError, StoreError
from rlstore.segment import ShardWriter
from rlstore.shard_formats import TFRECORD

_SCRATCH = "rlstore-shards"
RESULT_FILE = "result.json"  # in the writer's staging area


class ShardTarget:
    """Shards written in place, in a segment directory of a local staging area."""

    def __init__(self, segment_dir: str | os.PathLike, result_path: str | os.PathLike):
        self.segment_dir, self.result_path = str(segment_dir), str(result_path)

    @property
    def location(self) -> str:
        """What errors while writing shards name."""
        return self.segment_dir

    def writer(self, max_shard_bytes: int, shard_format: str = TFRECORD) -> ShardWriter:
        return ShardWriter(self.segment_dir, max_shard_bytes, shard_format)

    def put_result(self, data: bytes) -> None:
        temporary = f"{self.result_path}.tmp"
        try:
            with open(temporary, "wb") as stream:
                stream.write(data)
            os.replace(temporary, self.result_path)
        except OSError as error:
            raise StorageError(f"cannot write into the store: {error.strerror or error}",
                               Location(file=error.filename or temporary)) from None

    def result(self) -> bytes | None:
        try:
            return Path(self.result_path).read_bytes()
        except FileNotFoundError:
            return None


class BucketShardTarget:
    """Shards uploaded by the workers into the writer's staging area of a bucket."""

    def __init__(self, store_url: str, segment_key: str, result_key: str):
        self.store_url, self.segment_key, self.result_key = store_url, segment_key, result_key
        self._objects = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_objects": None}  # each worker makes its own client

    @property
    def objects(self):
        if self._objects is None:
            from rlstore.fs import ObjectStore

            self._objects = ObjectStore(self.store_url)
        return self._objects

    @property
    def location(self) -> str:
        return self.objects.url_of(self.segment_key)

    def writer(self, max_shard_bytes: int, shard_format: str = TFRECORD) -> ShardWriter:
        scratch = Path(tempfile.gettempdir()) / _SCRATCH
        scratch.mkdir(exist_ok=True)
        return ShardWriter(scratch, max_shard_bytes, shard_format, sink=self._upload)

    def _upload(self, path: Path) -> None:
        """Moves a closed shard into the bucket; a failed upload is a StorageError naming the object."""
        key = f"{self.segment_key}/{path.name}"
        try:
            self.objects.upload(path, key)
        except StoreError as error:
            raise StorageError(f"cannot upload a shard: {getattr(error, 'reason', error)}",
                               Location(file=self.objects.url_of(key))) from None
        finally:
            path.unlink(missing_ok=True)

    def put_result(self, data: bytes) -> None:
        try:
            self.objects.write(self.result_key, data)
        except StoreError as error:
            raise StorageError(f"cannot write the ingest's result: {getattr(error, 'reason', error)}",
                               Location(file=self.objects.url_of(self.result_key))) from None

    def result(self) -> bytes | None:
        return self.objects.read_if_exists(self.result_key)
