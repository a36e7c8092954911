"""RLDS windows cut from longer episodes (no step marked is_last), as Open X-Embodiment ships them:
repaired into truncations by default, refused with --strict."""
import numpy as np
import pytest

from rlstore.cli import main
from rlstore.pipelines.ingest import ingest
from rlstore.store import Store
from tests import rlds_fixtures as fx
from tests.format_fixtures import stock_read

BEAM = ["--direct_num_workers=1", "--direct_running_mode=in_memory"]


@pytest.fixture(scope="module")
def windows_dir(tmp_path_factory):
    """A TFDS-written RLDS dataset of three windows, none with a step marked is_last."""
    import tensorflow_datasets as tfds

    rng = np.random.default_rng(0)
    episodes = []
    for i, length in enumerate((4, 6, 3)):
        episode = fx.tfds_episode(i, length, False, rng)
        episode["steps"]["is_last"] = np.zeros(length, bool)
        episode["steps"]["discount"] = np.ones(length, np.float32)
        episodes.append(episode)
    root = tmp_path_factory.mktemp("windows")
    tfds.dataset_builders.store_as_tfds_dataset(
        name="windows", version="1.0.0", features=fx.tfds_features(),
        split_datasets={"train": [(i, fx._as_example(e)) for i, e in enumerate(episodes)]},
        data_dir=str(root), file_format="tfrecord",
        download_config=tfds.download.DownloadConfig(max_examples_per_split=None))
    return root / "windows" / "1.0.0", episodes


def test_windows_are_repaired_into_truncations_and_counted(tmp_path, windows_dir):
    directory, episodes = windows_dir
    store = Store(tmp_path / "store")
    manifest = ingest(store, "robot", [str(directory)], beam_args=BEAM)
    [warning] = [w for w in manifest.data["report"]["warnings"] if w["kind"] == "repaired_is_last"]
    assert warning["count"] == 3 and warning["examples"], warning
    stored = sorted(stock_read(store.segment_dirs("robot")), key=lambda e: int(e["episode_id"]))
    for original, episode in zip(episodes, stored):
        steps, length = episode["steps"], len(original["steps"]["action"])
        assert steps["is_last"].tolist() == [False] * (length - 1) + [True]
        assert not steps["is_terminal"].any()
        assert np.array_equal(steps["observation"]["image"], original["steps"]["observation"]["image"])
        assert np.array_equal(steps["reward"][:-1], original["steps"]["reward"][:-1])


def test_strict_refuses_windows_with_todays_message(capsys, tmp_path, windows_dir):
    directory, _ = windows_dir
    code = main(["--store", str(tmp_path / "store"), "ingest", "--dataset", "robot", "--strict", str(directory)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1, err
    assert "field 'steps/is_last': is_last must be True on exactly the last step" in err and "episode 0" in err, err
    assert Store(tmp_path / "store").versions("robot") == []
