"""Stores in Google Cloud Storage (`gs://bucket/prefix`) through gcsfs, against a real GCS
emulator on 127.0.0.1 (fake-gcs-server with its in-memory backend; tests/gcs_emulator.py),
which checks the `ifGenerationMatch=0` precondition that claims a version atomically. What the
emulator cannot show: real GCS's credentials and TensorFlow's own gs:// file system (TF 2.15
has no emulator endpoint setting), so stock TFDS reading a version straight from gs:// is not
tested here."""
from __future__ import annotations

import json
import threading

from rlstore.cli import main
from rlstore.fs import ObjectStore
from rlstore.numpy import episodes as numpy_episodes
from rlstore.store import Store
from rlstore.validation import validate
from tests.helpers import publish_episodes, steps_equal, vector_episode

_IN_PROCESS_BEAM = ["--", "--direct_num_workers=1", "--direct_running_mode=in_memory"]


def test_cli_round_trip_through_gcs(capsys, gcs_store, vector_logs, tmp_path, monkeypatch):
    logs, _, originals = vector_logs
    assert main(["--store", gcs_store, "ingest", "--dataset", "logs", "--format", "npz", f"{logs}/*.npz",
                 *_IN_PROCESS_BEAM]) == 0
    publish_episodes(Store(gcs_store), "logs", [vector_episode(6, 100)])  # an append: version 2
    capsys.readouterr()
    assert main(["--store", gcs_store, "info", "logs", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["versions"] == [1, 2] and info["num_episodes"] == len(originals) + 1
    assert all(segment.startswith(f"{gcs_store}/logs/segments/") for segment in info["segments"])
    assert main(["--store", gcs_store, "gc"]) == 0

    monkeypatch.setenv("RLSTORE_CACHE", str(tmp_path / "other_host"))  # a host with an empty cache
    store = Store(gcs_store)
    assert validate(store, "logs") == []
    read = {int(e["episode_id"]): e for e in numpy_episodes(store, "logs@1", repeat=False)}
    assert all(steps_equal(episode, read[int(episode["episode_id"])]["steps"]) for episode in originals)
    assert not ObjectStore(gcs_store).list("logs/staging")


def _at_once(job, count: int) -> list[BaseException]:
    """Runs `job(index, barrier)` on `count` threads that pass the barrier together; their errors."""
    barrier, failures = threading.Barrier(count), []

    def run(index: int) -> None:
        try:
            job(index, barrier)
        except BaseException as error:  # noqa: BLE001 - returned to the test
            failures.append(error)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def test_concurrent_claims_and_writers_get_distinct_versions(gcs_store):
    # Eight separate clients create one object at once: without the precondition all eight win.
    won = []

    def claim(index: int, barrier: threading.Barrier) -> None:
        mine = ObjectStore(gcs_store)
        barrier.wait()
        if mine.create("race/1.json", str(index).encode()):
            won.append(index)

    assert _at_once(claim, 8) == []
    assert len(won) == 1 and ObjectStore(gcs_store).read("race/1.json") == str(won[0]).encode()

    def publish(seed: int, barrier: threading.Barrier) -> None:
        store = Store(gcs_store)
        barrier.wait()
        publish_episodes(store, "shared", [vector_episode(5, seed)], {"pipeline": f"writer-{seed}"})

    writers = 4
    assert _at_once(publish, writers) == []
    store = Store(gcs_store)
    assert store.versions("shared") == list(range(1, writers + 1))
    assert sorted(int(e["episode_id"]) for e in store.load("shared")) == list(range(writers))
    assert {store.manifest(f"shared@{v}").lineage["pipeline"] for v in range(1, writers + 1)} == {
        f"writer-{i}" for i in range(writers)}


def test_a_missing_bucket_is_one_line_exit_1(capsys, gcs_store):
    # (A refused endpoint is one line too, but only after gcsfs's own six tries, ~30 s of backoff.)
    code = main(["--store", "gs://rlstore-no-such-bucket/store", "list"])
    err = capsys.readouterr().err
    assert code == 1 and err == "error: gs://rlstore-no-such-bucket: the bucket does not exist\n", err
