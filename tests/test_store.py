"""The store: versions, appends, pinning, names, concurrency and crash safety (real processes)."""
import json
import multiprocessing
import os
import signal

import pytest

from rlstore.errors import DatasetNameError, StoreError
from rlstore.store import Store
from tests.helpers import publish_episodes, vector_episode


def _files(directory):
    return {p: (p.stat().st_mtime_ns, p.stat().st_ino, p.read_bytes()) for p in directory.rglob("*") if p.is_file()}


def test_publish_append_and_pin(tmp_path):
    store = Store(tmp_path)
    first = publish_episodes(store, "ds", [vector_episode(5, i) for i in range(3)], {"pipeline": "a"})
    v1_files = _files(store.segment_dirs("ds@1")[0])
    v1_manifest = (tmp_path / "ds/versions/1.json").read_bytes()
    second = publish_episodes(store, "ds", [vector_episode(6, i) for i in range(3, 5)], {"pipeline": "b"})

    assert (first.version, second.version) == (1, 2)
    assert store.versions("ds") == [1, 2]
    assert second.num_episodes == 5 and second.num_steps == 3 * 5 + 2 * 6
    assert second.lineage["parent_version"] == 1 and second.lineage["pipeline"] == "b"
    assert [s["id"] for s in second.segments[:1]] == [s["id"] for s in first.segments]
    assert second.segments[1]["added_in"] == 2
    # the append wrote only the new segment: version 1's files and manifest are untouched
    assert _files(store.segment_dirs("ds@1")[0]) == v1_files
    assert (tmp_path / "ds/versions/1.json").read_bytes() == v1_manifest
    assert store.manifest("ds").version == 2 and store.manifest("ds@1").num_episodes == 3
    assert len(list(store.load("ds@1"))) == 3 and len(list(store.load("ds"))) == 5


def test_manifest_lineage_and_hashes(tmp_path):
    store = Store(tmp_path)
    manifest = publish_episodes(store, "ds", [vector_episode(5, 0)], {"pipeline": "p", "options": {"k": 1},
                                                                      "sources": [{"path": "x", "sha256": "00"}]})
    data = manifest.data
    for key in ("created", "rlstore_version", "writer", "schema", "stats"):
        assert key in data
    assert data["lineage"]["sources"][0]["sha256"] == "00" and data["lineage"]["parent_version"] is None
    shard = manifest.segments[0]["shards"][0]
    import hashlib

    path = store.segment_dirs("ds")[0] / shard["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == shard["sha256"]


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden", "..", "x" * 200, "name with space", "/abs"])
def test_names_cannot_escape_root(tmp_path, name):
    with pytest.raises(DatasetNameError):
        Store(tmp_path).dataset_dir(name)


@pytest.mark.parametrize("ref", ["ds@0", "ds@x", "ds@-1", "../x@1"])
def test_bad_references(tmp_path, ref):
    with pytest.raises(DatasetNameError):
        Store(tmp_path).resolve(ref)


def test_unknown_dataset_and_version(tmp_path):
    store = Store(tmp_path)
    publish_episodes(store, "ds", [vector_episode(5, 0)])
    with pytest.raises(StoreError, match="no dataset named 'other'"):
        store.manifest("other")
    with pytest.raises(StoreError, match="no version 7"):
        store.manifest("ds@7")


def test_schema_mismatch_on_append_is_refused(tmp_path):
    store = Store(tmp_path)
    publish_episodes(store, "ds", [vector_episode(5, 0)])
    odd = vector_episode(5, 1)
    odd["steps"]["observation"] = odd["steps"]["observation"][:, :2]
    with pytest.raises(StoreError, match="steps/observation"):
        publish_episodes(store, "ds", [odd])
    assert store.versions("ds") == [1]
    assert not any((tmp_path / "ds/staging").iterdir())


def _publisher(root, seed, barrier):
    store = Store(root)
    barrier.wait()
    publish_episodes(store, "shared", [vector_episode(5, seed)], {"pipeline": f"writer-{seed}"})


def test_concurrent_publishers_in_real_processes(tmp_path):
    context = multiprocessing.get_context("spawn")
    writers = 4
    barrier = context.Barrier(writers)
    processes = [context.Process(target=_publisher, args=(str(tmp_path), seed, barrier)) for seed in range(writers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [p.exitcode for p in processes] == [0] * writers
    store = Store(tmp_path)
    assert store.versions("shared") == list(range(1, writers + 1))
    latest = store.manifest("shared")
    assert latest.num_episodes == writers
    ids = [int(e["episode_id"]) for e in store.load("shared")]
    assert sorted(ids) == list(range(writers))
    pipelines = {store.manifest(f"shared@{v}").lineage["pipeline"] for v in range(1, writers + 1)}
    assert pipelines == {f"writer-{i}" for i in range(writers)}


def _crash_before_manifest(root):
    store = Store(root)

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    Store._claim = die
    publish_episodes(store, "ds", [vector_episode(5, 99)])


def test_crash_between_segment_write_and_manifest(tmp_path):
    store = Store(tmp_path)
    publish_episodes(store, "ds", [vector_episode(5, 0)])
    process = multiprocessing.get_context("spawn").Process(target=_crash_before_manifest, args=(str(tmp_path),))
    process.start()
    process.join(120)
    assert process.exitcode == -signal.SIGKILL
    # the crashed writer moved its segment in but never claimed a version
    assert store.versions("ds") == [1]
    assert len(list((tmp_path / "ds/segments").iterdir())) == 2
    assert len(list(store.load("ds"))) == 1
    # the next writer cleans up after it, and publishes normally
    publish_episodes(store, "ds", [vector_episode(5, 1)])
    assert store.versions("ds") == [1, 2]
    referenced = {s["id"] for s in store.manifest("ds").segments}
    assert {p.name for p in (tmp_path / "ds/segments").iterdir()} == referenced
    assert list((tmp_path / "ds/staging").iterdir()) == []
    assert json.loads((tmp_path / "ds/versions/2.json").read_text())["num_episodes"] == 2
