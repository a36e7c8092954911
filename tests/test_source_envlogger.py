"""The envlogger format: a real Riegeli log with several shards, re-paired to RLDS's SAR alignment,
through the Beam pipeline and read back with stock TFDS; a missing shard file is bad input."""
import hashlib

import numpy as np
import pytest

from rlstore.pipelines.ingest import ingest, plan
from rlstore.errors import BadInputError
from rlstore.store import Store
from tests.format_fixtures import assert_rejected, assert_trees_equal, stock_read, write_envlogger_log

IN_MEMORY = ["--direct_running_mode=in_memory"]  # the real DirectRunner, without starting worker processes


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    return write_envlogger_log(tmp_path_factory.mktemp("envlogger") / "cartpole", num_episodes=5, episodes_per_shard=2)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, log):
    directory, _ = log
    store = Store(tmp_path_factory.mktemp("store"))
    manifest = ingest(store, "cartpole", [str(directory)], format_options={"episodes_per_item": 2}, beam_args=IN_MEMORY)
    return manifest, {int(e["episode_id"]): e for e in stock_read(store.segment_dirs("cartpole"))}


def test_log_has_several_shards_and_is_detected(log):
    directory, _ = log
    assert len([p for p in directory.iterdir() if p.is_dir()]) == 3
    source_format, items = plan([str(directory)], "auto", {"episodes_per_item": 2})[:2]
    assert source_format.name == "envlogger"
    assert [(i["start"], i["stop"]) for i in items] == [(0, 2), (2, 4), (4, 5)]


def test_steps_are_re_paired_to_sar_with_step_and_episode_metadata(ingested, log):
    manifest, episodes = ingested
    _, expected = log
    assert manifest.lineage["format"] == "envlogger" and sorted(episodes) == [100, 101, 102, 103, 104]
    for episode in expected:
        assert_trees_equal(episode, episodes[int(episode["episode_id"])])


def test_terminal_truncated_and_unfinished_episodes(ingested):
    _, episodes = ingested
    ends = [(bool(e["steps"]["is_terminal"][-1]), float(e["steps"]["discount"][-2])) for _, e in sorted(episodes.items())]
    # pushed left until the pole fell / balanced until the 12-step limit / left unfinished after 2 steps
    assert ends == [(True, 0.0), (False, 1.0), (True, 0.0), (False, 1.0), (False, 1.0)]
    assert len(episodes[101]["steps"]["reward"]) == len(episodes[103]["steps"]["reward"]) == 13
    assert len(episodes[104]["steps"]["reward"]) == 3


def test_run_metadata_and_every_file_land_in_the_lineage(ingested, log):
    manifest, _ = ingested
    directory, _ = log
    (run_metadata,) = manifest.lineage["run_metadata"].values()
    assert run_metadata["agent"] == "scripted" and run_metadata["seed"] == 0
    assert run_metadata["environment_specs"]["observation_spec"]["shape"] == [4]
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    assert len(files) == 1 + 3 * 4
    assert {s["path"]: s["sha256"] for s in manifest.lineage["sources"]} == \
        {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_missing_shard_file(tmp_path, log):
    import shutil

    directory, _ = log
    copy = tmp_path / "log"
    shutil.copytree(directory, copy)
    shard = sorted(p for p in copy.iterdir() if p.is_dir())[1]
    (shard / "step_offsets.riegeli").unlink()  # envlogger's own reader would skip this shard silently
    store = Store(tmp_path / "store")
    with pytest.raises(BadInputError) as raised:
        ingest(store, "ds", [str(copy)])
    assert_rejected(raised.value, shard / "step_offsets.riegeli", store)
    assert "shard file is missing" in raised.value.readable()


def test_damaged_records_name_the_episode(tmp_path, log):
    import shutil

    from rlstore.pipelines.sources.envlogger import EnvloggerFormat

    directory, _ = log
    copy = tmp_path / "log"
    shutil.copytree(directory, copy)
    steps = sorted(p for p in copy.iterdir() if p.is_dir())[0] / "steps.riegeli"
    data = bytearray(steps.read_bytes())
    data[len(data) // 2: len(data) // 2 + 40] = b"\xff" * 40
    steps.write_bytes(bytes(data))
    fmt = EnvloggerFormat()
    with pytest.raises(BadInputError) as raised:
        [pair for item in fmt.work_items([copy]) for pair in fmt.read(item)]
    assert raised.value.location.file == str(copy) and raised.value.location.episode in (0, 1)
    assert "unreadable Riegeli data" in raised.value.readable()


def test_reset_only_episode_takes_its_zeros_from_the_specs(tmp_path):
    import envlogger

    from rlstore.pipelines.sources.envlogger import EnvloggerFormat
    from rlstore.envs import make_environment

    directory = tmp_path / "log"
    directory.mkdir()
    with envlogger.EnvLogger(make_environment("catch:rows=3,columns=3", seed=0), data_directory=str(directory)) as env:
        first = env.reset()
    fmt = EnvloggerFormat()
    [(where, episode)] = [pair for item in fmt.work_items([directory]) for pair in fmt.read(item)]
    steps = episode["steps"]
    np.testing.assert_array_equal(steps["observation"], first.observation[None])
    assert steps["action"].dtype == np.int64 and steps["reward"].dtype == np.float64 and steps["action"].shape == (1,)
    assert steps["is_last"].tolist() == [True] and not steps["is_terminal"].any() and where.episode == 0
