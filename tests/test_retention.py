"""Retention: prune deletes old versions and what only they use; gc removes orphans."""
import json
import shutil
import subprocess
import sys

import numpy as np

from rlstore import segment_lists
from rlstore.store import Staging, Store
from rlstore.validation import validate
from tests.helpers import publish_episodes, vector_episode


def _rlstore(root, *args):
    return subprocess.run([sys.executable, "-m", "rlstore", "--store", str(root), *args],
                          capture_output=True, text=True, timeout=120)


def _compacted_history(root, commits=5):
    """`commits` one-episode versions, then one compacted version of all of them."""
    store = Store(root)
    for seed in range(commits):
        publish_episodes(store, "ds", [vector_episode(4, seed)])
    store.compact("ds")
    return store


def test_prune_keeps_pinned_versions_and_deletes_what_only_old_versions_use(tmp_path):
    store = _compacted_history(tmp_path / "store")
    small = {s["id"] for s in store.manifest("ds@5").segments}
    runs = tmp_path / "runs"
    (runs / "bc").mkdir(parents=True)
    (runs / "bc" / "run.json").write_text(json.dumps({"dataset": {"ref": "ds@3", "name": "ds", "version": 3}}))

    result = _rlstore(store.root, "prune", "ds", "--keep-last", "1", "--runs", str(runs))
    assert result.returncode == 0, result.stderr
    assert "kept ds@3: pinned by" in result.stdout and "deleted 4 version(s)" in result.stdout
    assert store.versions("ds") == [3, 6]
    on_disk = {p.name for p in (store.dataset_dir("ds") / "segments").iterdir()}
    assert small & on_disk == {s["id"] for s in store.manifest("ds@3").segments}  # v3's stay, v4/v5's own go
    for version in (3, 6):
        assert validate(store, f"ds@{version}") == []
    assert len(list(store.load("ds"))) == 5

    result = _rlstore(store.root, "prune", "ds", "--before", "6", "--runs", str(runs), "--force")
    assert result.returncode == 0 and "deleted 1 version(s)" in result.stdout, result.stderr
    assert store.versions("ds") == [6]
    assert {p.name for p in (store.dataset_dir("ds") / "segments").iterdir()} == \
        {s["id"] for s in store.manifest("ds").segments}
    referenced = {r["sha256"] for r in store.manifest("ds").data["segment_lists"]}
    assert {p.stem for p in (store.dataset_dir("ds") / segment_lists.DIRECTORY).iterdir()} == referenced
    log = [json.loads(line) for line in store.log_path("ds").read_text().splitlines()]
    assert [e["versions"] for e in log] == [[1, 2, 4, 5], [3]] and log[1]["forced"] and log[1]["pinned_and_deleted"] == [3]
    assert set(log[0]["segments"]) | set(log[1]["segments"]) == small
    assert validate(store, "ds") == []  # its parent was pruned, and the log says so
    assert _rlstore(store.root, "prune", "ds", "--keep-last", "0").returncode == 1


def test_gc_removes_orphans_but_not_what_a_live_writer_staged(tmp_path):
    store = Store(tmp_path / "store")
    publish_episodes(store, "ds", [vector_episode(4, 0)])
    directory = store.dataset_dir("ds")
    segment = store.segment_dirs("ds")[0]
    shutil.copytree(segment, directory / "segments" / "orphan-segment")  # e.g. a writer that died mid-publish
    shutil.copytree(segment, directory / "segments" / "staged-segment")
    orphan_list = directory / segment_lists.DIRECTORY / ("0" * 64 + ".json")
    orphan_list.write_text("{}")
    checkpoints = directory / "replay_checkpoints"
    for name in ("v1-abc", "v7-abc", "v8-abc"):
        (checkpoints / name / "reverb").mkdir(parents=True)
    runs = tmp_path / "runs" / "r"
    runs.mkdir(parents=True)
    (runs / "run.json").write_text(json.dumps({"replay_checkpoint": str(checkpoints / "v8-abc")}))
    live = Staging(directory)
    (live.path / "pending.json").write_text(json.dumps({"segments": ["staged-segment"], "segment_lists": []}))
    try:
        result = _rlstore(store.root, "gc", "--runs", str(tmp_path / "runs"))
    finally:
        live.close()
    assert result.returncode == 0, result.stderr
    assert not (directory / "segments" / "orphan-segment").exists() and not orphan_list.exists()
    assert (directory / "segments" / "staged-segment").is_dir()  # a live writer's, not an orphan
    assert sorted(p.name for p in checkpoints.iterdir()) == ["v1-abc", "v8-abc"]
    assert validate(store, "ds") == []


def test_two_concurrent_ingests_where_one_fails_leave_nothing_gc_cannot_find(tmp_path):
    """Two real `rlstore ingest` processes into one new dataset, with observations of different
    shapes: whichever publishes first wins, the other must fail (its schema no longer fits) and,
    whether it failed before or after moving its segment in, nothing of it may outlive `gc`."""
    from tests.helpers import write_npz_logs

    narrow = [vector_episode(5, seed) for seed in range(3)]
    wide = [vector_episode(5, seed) for seed in range(3)]
    for episode in wide:
        episode["steps"]["observation"] = np.zeros((5, 7), np.float32)
    write_npz_logs(tmp_path / "narrow", narrow)
    write_npz_logs(tmp_path / "wide", wide)
    root = tmp_path / "store"
    ingests = [subprocess.Popen([sys.executable, "-m", "rlstore", "--store", str(root), "ingest", "--dataset", "fresh",
                                 str(tmp_path / source), "--", "--direct_num_workers=1"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
               for source in ("narrow", "wide")]
    results = [(process.wait(timeout=180), process.stderr.read()) for process in ingests]
    assert sorted(status for status, _ in results) == [0, 1], results
    failed = next(err for status, err in results if status == 1)
    assert "cannot append to fresh" in failed and "Traceback" not in failed, failed

    result = _rlstore(root, "gc")
    assert result.returncode == 0, result.stderr
    store = Store(root)
    assert store.versions("fresh") == [1]
    directory = store.dataset_dir("fresh")
    assert {p.name for p in (directory / "segments").iterdir()} == {s["id"] for s in store.manifest("fresh").segments}
    assert not (directory / "staging").exists() or list((directory / "staging").iterdir()) == []
    assert validate(store, "fresh") == []
