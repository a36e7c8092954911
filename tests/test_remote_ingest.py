"""Ingest into a store in a bucket (moto's S3 server on 127.0.0.1): the Beam workers upload their
shards into the writer's staging area themselves and the driver only publishes, on the
DirectRunner's worker processes and on a Dask cluster of two worker processes. (A writer
killed after its workers uploaded: tests/test_remote_store.py.)"""
from __future__ import annotations

import pytest

from rlstore.fs import ObjectStore
from rlstore.numpy import episodes as numpy_episodes
from rlstore.pipelines.dask_cluster import local_dask_cluster
from rlstore.pipelines.ingest import ingest
from rlstore.store import Store
from rlstore.validation import validate
from tests.helpers import bucket_keys, steps_equal

_TWO_WORKER_PROCESSES = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
_DASK = "--runner=apache_beam.runners.dask.dask_runner.DaskRunner"


@pytest.mark.parametrize("runner", ["direct", "dask"])
def test_workers_upload_the_shards_and_the_driver_only_publishes(runner, s3_store, vector_logs, tmp_path,
                                                                  monkeypatch):
    logs, _, originals = vector_logs
    driver_uploads, copies = [], []
    upload, copy = ObjectStore.upload, ObjectStore.copy
    monkeypatch.setattr(ObjectStore, "upload", lambda self, local, key: (driver_uploads.append(key),
                                                                          upload(self, local, key))[1])
    monkeypatch.setattr(ObjectStore, "copy", lambda self, source, target: (copies.append((source, target)),
                                                                          copy(self, source, target))[1])
    store = Store(s3_store)
    if runner == "direct":
        manifest = ingest(store, "logs", [str(logs)], beam_args=_TWO_WORKER_PROCESSES)
    else:  # the workers inherit the S3 endpoint and credentials of this test's environment
        with local_dask_cluster(2, tmp_path / "dask") as address:
            manifest = ingest(store, "logs", [str(logs)], beam_args=[_DASK, f"--dask_client_address={address}"])

    # Every shard came from a worker process: the driver uploaded metadata only, then copied the
    # workers' shards from its staging area to their final names inside the bucket.
    (segment,) = manifest.segments
    shards = {shard["file"] for shard in segment["shards"]}
    assert len(shards) >= 2 and driver_uploads and all(key.endswith(".json") for key in driver_uploads)
    assert {target.rsplit("/", 1)[-1] for _, target in copies} == shards
    assert all("/staging/" in source and source.endswith(".pending-shard") for source, _ in copies)
    stored = {key.rsplit("/", 1)[-1] for key in bucket_keys(s3_store, f"logs/segments/{segment['id']}/")}
    assert shards <= stored and bucket_keys(s3_store, "logs/staging/") == []

    # Another host reads it from the bucket alone, each shard checked against the manifest's sha256.
    monkeypatch.setenv("RLSTORE_CACHE", str(tmp_path / "other_host"))
    other = Store(s3_store)
    assert validate(other, "logs") == []
    read = {int(e["episode_id"]): e for e in numpy_episodes(other, "logs", repeat=False)}
    assert sorted(read) == list(range(len(originals)))
    assert all(steps_equal(episode, read[int(episode["episode_id"])]["steps"]) for episode in originals)
