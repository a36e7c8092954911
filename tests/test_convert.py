"""Converting versions out: Minari and D4RL round trips are exact, RLDS is one stock TFDS directory."""
import os
import warnings

import numpy as np
import pytest

from rlstore.errors import StoreError
from rlstore.convert import convert
from rlstore.pipelines.ingest import ingest
from rlstore.store import Store
from tests.format_fixtures import write_d4rl_file, write_minari_dataset

IN_MEMORY = ["--direct_running_mode=in_memory"]


def _load_minari(root, dataset_id):
    import minari

    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        return minari.load_dataset(dataset_id)
    finally:
        if previous is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous


def _assert_same(expected, actual, path=""):
    if isinstance(expected, dict):
        assert sorted(expected) == sorted(actual), path
        for key in expected:
            _assert_same(expected[key], actual[key], f"{path}/{key}")
    elif isinstance(expected, (tuple, list)) and not isinstance(expected, np.ndarray) and \
            expected and isinstance(expected[0], (dict, tuple, np.ndarray)):
        assert len(expected) == len(actual), path
        for index, (a, b) in enumerate(zip(expected, actual)):
            _assert_same(a, b, f"{path}/{index}")
    else:
        expected, actual = np.asarray(expected), np.asarray(actual)
        assert expected.dtype == actual.dtype, f"{path}: {expected.dtype} != {actual.dtype}"
        np.testing.assert_array_equal(expected, actual, err_msg=path)


def test_minari_to_rlstore_to_minari_is_exact(tmp_path):
    source, _ = write_minari_dataset(tmp_path / "in", "hdf5", episodes=((3, "terminated"), (4, "truncated"),
                                                                        (5, "terminated")))
    store = Store(tmp_path / "store")
    ingest(store, "ds", [str(source)], format="minari", beam_args=IN_MEMORY)
    report = convert(store, "ds", to="minari", out=tmp_path / "out", dataset_id="rlstore/back-v0")
    assert report.episodes == 3 and report.warnings == []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        original = _load_minari(tmp_path / "in", "rlstore/hdf5-v0")
        back = _load_minari(tmp_path / "out", "rlstore/back-v0")
    assert back.spec.observation_space == original.spec.observation_space
    assert back.spec.action_space == original.spec.action_space
    assert back.total_steps == original.total_steps and back.total_episodes == 3
    for key in ("algorithm_name", "description"):
        assert back.storage.metadata[key] == original.storage.metadata[key]
    for want, got in zip(original.iterate_episodes(), back.iterate_episodes()):
        assert (want.id, want.seed if hasattr(want, "seed") else None) == (got.id, got.seed if hasattr(got, "seed") else None)
        for field in ("observations", "actions", "rewards", "terminations", "truncations", "infos"):
            _assert_same(getattr(want, field), getattr(got, field), field)
    with pytest.raises(StoreError, match="already exists"):
        convert(store, "ds", to="minari", out=tmp_path / "out", dataset_id="rlstore/back-v0")


def test_d4rl_to_rlstore_to_d4rl_is_exact(tmp_path):
    import h5py

    written = write_d4rl_file(tmp_path / "in.hdf5", [(5, "terminal"), (4, "timeout"), (6, "terminal")])
    store = Store(tmp_path / "store")
    ingest(store, "ds", [str(tmp_path / "in.hdf5")], format="d4rl", beam_args=IN_MEMORY)
    report = convert(store, "ds", to="d4rl", out=tmp_path / "out.hdf5")
    assert report.warnings == [] and report.episodes == 3
    with h5py.File(tmp_path / "out.hdf5") as h5:
        keys = []
        h5.visititems(lambda name, node: keys.append(name) if isinstance(node, h5py.Dataset) else None)
        assert sorted(keys) == sorted(written)
        for key, value in written.items():
            _assert_same(value, h5[key][()], key)


def test_rlds_is_one_stock_tfds_directory_with_the_versions_episodes(framework_store, tmp_path, capsys):
    import tensorflow_datasets as tfds

    from rlstore.cli import main

    store, originals = framework_store
    assert main(["--store", str(store.root), "convert", "vec", "--to", "rlds", "--out", str(tmp_path / "tfds")]) == 0
    assert "10 episodes, 95 steps" in capsys.readouterr().out
    builder = tfds.builder_from_directory(str(tmp_path / "tfds"))
    read = {int(e["episode_id"]): e for e in tfds.as_numpy(builder.as_dataset(split="train"))}
    assert sorted(read) == list(range(10))
    for original in originals["vec"]:
        observations = [step["observation"] for step in read[int(original["episode_id"])]["steps"]]
        np.testing.assert_array_equal(np.stack(observations), original["steps"]["observation"])
    assert main(["--store", str(store.root), "convert", "vec", "--to", "rlds", "--out", str(tmp_path / "tfds")]) == 1
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["tfds"]  # nothing half-written beside it


def test_what_a_format_cannot_hold_is_named(framework_store, tmp_path):
    import h5py

    store, originals = framework_store
    report = convert(store, "rich", to="d4rl", out=tmp_path / "rich.hdf5")
    text = "\n".join(report.warnings)
    assert "'temperature' is dropped" in text and "observation is a nested dict" in text
    assert "episode metadata 'episode_id' differs" in text
    with h5py.File(tmp_path / "rich.hdf5") as h5:
        assert h5["rewards"].shape == (sum(3 + i - 1 for i in range(4)),) and h5["metadata/task"][()] == b"reach"
        np.testing.assert_array_equal(h5["observations/pixels"][:2], originals["rich"][0]["steps"]["observation"]["pixels"][:2])
    report = convert(store, "rich", to="minari", out=tmp_path / "minari", dataset_id="rich-v0")
    text = "\n".join(report.warnings)
    assert "'task' is dropped" in text and "JPEG" in text and "infos/temperature" in text
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        back = _load_minari(tmp_path / "minari", "rich-v0")
    episode = next(back.iterate_episodes())
    np.testing.assert_array_equal(episode.observations["state"]["pos"], originals["rich"][0]["steps"]["observation"]["state"]["pos"])
    np.testing.assert_array_equal(episode.infos["temperature"], originals["rich"][0]["steps"]["temperature"])
    with pytest.raises(StoreError, match="dataset-id"):
        convert(store, "rich", to="minari", out=tmp_path / "minari2")
    with pytest.raises(StoreError, match="needs a version"):
        convert(store, "rich", to="minari", out=tmp_path / "minari2", dataset_id="ns/rich")
