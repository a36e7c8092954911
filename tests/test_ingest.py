"""The Beam ingest pipeline end to end, read back with stock TFDS only."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from rlstore.pipelines.ingest import (MAX_BATCHES, SMALL_INPUT_BYTES, THREAD_BATCHES, default_beam_args, ingest,
                                      max_batches)
from rlstore.pipelines.sources import input_bytes
from rlstore.info import describe
from rlstore.store import Store
from rlstore.validation import validate
from tests.helpers import rich_episode, steps_equal, write_npz_logs


def _stock_read(segments):
    """Every episode of a version through plain TFDS, steps stacked into arrays."""
    builder = tfds.builder_from_directories([str(s) for s in segments])
    episodes = []
    for episode in builder.as_dataset(split="train"):
        steps = episode["steps"].batch(10_000).get_single_element()
        episodes.append(tfds.as_numpy({**{k: v for k, v in episode.items() if k != "steps"}, "steps": steps}))
    return episodes


@pytest.fixture(scope="module")
def vector_store(tmp_path_factory, vector_logs):
    directory, _, _ = vector_logs
    store = Store(tmp_path_factory.mktemp("store"))
    ingest(store, "vec", [str(directory)], format="npz")
    return store


def test_stock_tfds_reads_back_every_episode(vector_store, vector_logs):
    _, paths, originals = vector_logs
    info = describe(vector_store, "vec")
    assert info["num_episodes"] == len(originals)
    assert info["num_steps"] == sum(len(e["steps"]["reward"]) for e in originals)
    read = {int(e["episode_id"]): e for e in _stock_read(info["segments"])}
    assert sorted(read) == list(range(len(originals)))
    for original in originals:
        assert steps_equal(original, read[int(original["episode_id"])]["steps"])


def test_lineage_names_every_source_with_its_hash(vector_store, vector_logs):
    import hashlib

    _, paths, _ = vector_logs
    lineage = vector_store.manifest("vec@1").lineage
    assert lineage["pipeline"] == "rlstore.ingest" and lineage["format"] == "npz"
    hashes = {s["path"]: s["sha256"] for s in lineage["sources"]}
    assert hashes == {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    stats = describe(vector_store, "vec")["stats"]
    assert stats["episode_length"]["min"] == 5 and stats["episode_length"]["max"] == 16


def test_images_dicts_and_metadata_round_trip(tmp_path):
    originals = [rich_episode(4 + i, seed=i) for i in range(5)]
    write_npz_logs(tmp_path / "logs", originals)
    store = Store(tmp_path / "store")
    manifest = ingest(store, "rich", [str(tmp_path / "logs" / "*.npz")])
    assert manifest.schema.describe()["steps/observation/pixels"] == "uint8[6x5x3, png]"
    read = {int(e["episode_id"]): e for e in _stock_read(store.segment_dirs("rich"))}
    for original in originals:
        episode = read[int(original["episode_id"])]
        assert steps_equal(original, episode["steps"])
        assert episode["task"] == b"reach"


def test_append_adds_a_version_and_a_path_given_twice_is_read_once(tmp_path, vector_logs):
    _, paths, _ = vector_logs
    store = Store(tmp_path)
    first = ingest(store, "ds", [str(paths[0]), str(paths[0]), str(paths[1])])
    assert first.num_episodes == 2
    second = ingest(store, "ds", [str(p) for p in paths[2:5]], beam_args=["--direct_num_workers=1"])
    assert (second.version, second.num_episodes, len(second.segments)) == (2, 5, 2)
    assert second.lineage["parent_version"] == 1
    assert second.lineage["options"]["beam_args"] == ["--direct_num_workers=1"]
    assert len(_stock_read(store.segment_dirs("ds@1"))) == 2
    assert not list((tmp_path / "ds" / "staging").iterdir())


def test_shards_roll_over_by_size(tmp_path, vector_logs):
    directory, _, originals = vector_logs
    manifest = ingest(Store(tmp_path), "ds", [str(directory)], max_shard_bytes=300)
    shards = manifest.segments[0]["shards"]
    assert len(shards) > 2 and sum(s["num_episodes"] for s in shards) == len(originals)
    assert np.all([s["file"].endswith(f"-of-{len(shards):05d}") for s in shards])


def test_small_inputs_run_on_threads_here_and_large_ones_in_worker_processes():
    cores = f"--direct_num_workers={os.cpu_count() or 1}"
    small = default_beam_args([], SMALL_INPUT_BYTES - 1)
    assert small == ["--direct_running_mode=multi_threading", cores]
    assert max_batches(small) == THREAD_BATCHES * (os.cpu_count() or 1)  # few shards: nothing to spread
    large = default_beam_args([], SMALL_INPUT_BYTES)
    assert large == ["--direct_running_mode=multi_processing", cores] and max_batches(large) == MAX_BATCHES
    assert default_beam_args(["--direct_running_mode=in_memory"], 1) == ["--direct_running_mode=in_memory", cores]
    dask = ["--runner=apache_beam.runners.dask.dask_runner.DaskRunner"]
    assert default_beam_args(dask, 1) == [*dask, "--dask_partition_size=1"] and max_batches(dask) == MAX_BATCHES


def test_input_bytes_counts_every_file_below_the_inputs(tmp_path):
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "a.npz").write_bytes(b"x" * 10)
    (tmp_path / "d" / "e" / "b.npz").write_bytes(b"x" * 5)
    (tmp_path / "c.npz").write_bytes(b"x" * 3)
    assert input_bytes([tmp_path / "d", tmp_path / "c.npz"]) == 18


def test_two_worker_processes_ingest_every_episode(tmp_path, vector_logs):
    directory, _, originals = vector_logs
    store = Store(tmp_path / "store")
    manifest = ingest(store, "vec", [str(directory)], format="npz",
                      beam_args=["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    assert manifest.num_episodes == len(originals)
    assert validate(store, "vec") == []


_WORKER = """
import atexit, importlib.machinery, sys
atexit.register(lambda: print("finalized", flush=True))  # an earlier handler, as Beam's imports leave them
from rlstore.pipelines.worker_exit import SDK_WORKER_MAIN, exit_fast_after_harness
assert not exit_fast_after_harness()  # not a Beam SDK worker: nothing changes
sys.modules["__main__"].__spec__ = importlib.machinery.ModuleSpec(SDK_WORKER_MAIN, None)
assert exit_fast_after_harness()
print("harness done", flush=True)
if sys.argv[1] == "fail":
    raise RuntimeError("the harness failed")
"""


@pytest.mark.parametrize("how", ["ok", "fail"])
def test_an_sdk_worker_skips_finalization_only_after_a_clean_end(how):
    result = subprocess.run([sys.executable, "-c", _WORKER, how], capture_output=True, text=True, timeout=60)
    assert "harness done" in result.stdout
    if how == "ok":  # out with os._exit(0): the earlier atexit handler never ran
        assert result.returncode == 0 and "finalized" not in result.stdout, result.stderr
    else:  # an uncaught exception exits as Python would: its status, its traceback, every handler
        assert result.returncode == 1 and "finalized" in result.stdout and "the harness failed" in result.stderr
