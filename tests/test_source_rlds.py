"""The `rlds` source format on datasets really written by TFDS, envlogger and rlstore itself.

Each dataset is ingested (with format="rlds" and with format="auto"), read back with stock TFDS
over the version's segment directories, and compared episode by episode with what the producer
was given. Bad inputs must fail with a BadInputError naming the file and leave nothing behind.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from rlstore.pipelines.ingest import ingest
from rlstore.errors import BadInputError
from rlstore.store import Store
from tests import rlds_fixtures as fx

# ---- datasets, built once per session -----------------------------------------------------


@pytest.fixture(scope="session")
def tfds_source(tmp_path_factory):
    return fx.write_tfds_dataset(tmp_path_factory.mktemp("tfds_written"))


@pytest.fixture(scope="session")
def envlogger_source(tmp_path_factory):
    return fx.write_envlogger_dataset(tmp_path_factory.mktemp("envlogger_written"))


@pytest.fixture(scope="session")
def rlstore_source(tmp_path_factory):
    return fx.write_rlstore_segment(tmp_path_factory.mktemp("rlstore_written"))


SOURCES = {"tfds": "tfds_source", "envlogger": "envlogger_source", "rlstore": "rlstore_source"}

# ---- helpers -------------------------------------------------------------------------------


def flat(tree, prefix=""):
    out = {}
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else key
        out.update(flat(value, path) if isinstance(value, dict) else {path: value})
    return out


def read_back(store: Store, name: str) -> list[dict]:
    """Every episode of the latest version (every split), through stock TFDS only, steps stacked per field."""
    import tensorflow_datasets as tfds

    builder = tfds.builder_from_directories([str(p) for p in store.segment_dirs(name)])
    episodes = []
    for episode in tfds.as_numpy(builder.as_dataset(split="+".join(builder.info.splits))):
        rows = [flat(step) for step in episode["steps"]]
        steps = {key: np.stack([row[key] for row in rows]) for key in rows[0]}
        episodes.append({**{k: v for k, v in flat(episode).items() if not k.startswith("steps")},
                         **{f"steps/{k}": v for k, v in steps.items()}})
    return episodes


def as_text(value) -> list[bytes]:
    return [v if isinstance(v, bytes) else bytes(v) for v in np.asarray(value, dtype=object).reshape(-1).tolist()]


def assert_same_episodes(actual: list[dict], expected: list[dict], key: str = "episode_id") -> None:
    """Order-independent, field-by-field equality; the last step is zero-filled as RLDS says."""
    expected = {int(e[key]): flat(fx.zero_filled(e)) for e in expected}
    actual = {int(a[key]): a for a in actual}
    assert sorted(actual) == sorted(expected), "episode ids differ"
    for episode_id, want in expected.items():
        got = actual[episode_id]
        assert sorted(got) == sorted(want), f"episode {episode_id}: fields differ"
        for field, value in want.items():
            value, result = np.asarray(value), np.asarray(got[field])
            where = f"episode {episode_id}, field {field}"
            if value.dtype.kind in "SUO":
                assert as_text(result) == as_text(value), where
            else:
                assert result.dtype == value.dtype, f"{where}: {result.dtype} != {value.dtype}"
                assert result.shape == value.shape, f"{where}: {result.shape} != {value.shape}"
                np.testing.assert_array_equal(result, value, err_msg=where)


def assert_nothing_published(store: Store, name: str = "ds") -> None:
    assert store.versions(name) == []
    staging = store.dataset_dir(name) / "staging"
    assert not staging.exists() or not any(staging.iterdir()), list(staging.iterdir())


# ---- what the producers wrote --------------------------------------------------------------


def test_tfds_writer_made_two_splits_with_sharded_names(tfds_source):
    root, expected = tfds_source
    directory = fx.tfds_dataset_dir(root)
    shards = sorted(p.name for p in directory.iterdir() if ".tfrecord" in p.name)
    assert shards == ["toy_rlds-test.tfrecord-00000-of-00001", "toy_rlds-train.tfrecord-00000-of-00001"]
    info = json.loads((directory / "dataset_info.json").read_text())
    assert sorted(s["name"] for s in info["splits"]) == ["test", "train"]
    features = (directory / "features.json").read_text()
    assert "zlib" in features and "png" in features


def test_envlogger_shards_have_no_of_suffix(envlogger_source):
    directory, expected = envlogger_source
    shards = sorted(p.name for p in directory.iterdir() if ".tfrecord" in p.name)
    # 5 episodes, 2 per file; envlogger's SequentialWriter names shards without `-of-NNNNN`.
    assert shards == [f"{fx.ENVLOGGER_NAME}-train.tfrecord-{i:05d}" for i in range(3)]
    assert not any("-of-" in name for name in shards)
    (split,) = json.loads((directory / "dataset_info.json").read_text())["splits"]
    assert "SHARD_X_OF_Y" not in split["filepathTemplate"]
    assert [int(n) for n in split["shardLengths"]] == [2, 2, 1]
    assert len(expected) == 5 and all(e["steps"]["is_terminal"][-1] for e in expected)


# ---- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["rlds", "auto"])
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_ingest_round_trip(source, fmt, request, tmp_path):
    path, expected = request.getfixturevalue(SOURCES[source])
    if source == "tfds" and fmt == "rlds":
        path = fx.tfds_dataset_dir(path)  # the version directory itself; "auto" gets the data_dir root
    store = Store(tmp_path / "store")

    manifest = ingest(store, "ds", [str(path)], format=fmt)

    assert manifest.lineage["format"] == "rlds"
    assert manifest.num_episodes == len(expected)
    assert manifest.num_steps == sum(len(e["steps"]["is_first"]) for e in expected)
    assert_same_episodes(read_back(store, "ds"), expected)


# ---- bad input -----------------------------------------------------------------------------


def test_directory_without_tfds_metadata(tmp_path):
    source = tmp_path / "notes"
    source.mkdir()
    (source / "README.txt").write_text("not a dataset\n")
    store = Store(tmp_path / "store")
    with pytest.raises(BadInputError) as raised:
        ingest(store, "ds", [str(source)], format="rlds")
    error = raised.value
    assert "dataset_info.json" in error.readable()
    assert Path(error.location.file).resolve() == source.resolve()
    assert str(source.resolve()) in error.readable()
    assert_nothing_published(store)


def test_empty_directory(tmp_path):
    source = tmp_path / "empty"
    source.mkdir()
    store = Store(tmp_path / "store")
    with pytest.raises(BadInputError) as raised:
        ingest(store, "ds", [str(source)], format="rlds")
    error = raised.value
    assert "empty" in error.readable()
    assert Path(error.location.file).resolve() == source.resolve()
    assert str(source.resolve()) in error.readable()
    assert_nothing_published(store)


def test_corrupt_shard_is_named(tfds_source, tmp_path):
    root, _ = tfds_source
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    shard = fx.tfds_dataset_dir(copy) / "toy_rlds-train.tfrecord-00000-of-00001"
    data = bytearray(shard.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])
    shard.write_bytes(bytes(data))
    store = Store(tmp_path / "store")
    # Work items run in split order (test, then train): the schema comes from the intact test
    # shard, so the corrupt train shard fails inside the Beam pipeline.
    with pytest.raises(BadInputError) as raised:
        ingest(store, "ds", [str(copy)], format="rlds")
    error = raised.value
    assert Path(error.location.file).resolve() == shard.resolve()
    assert shard.name in error.readable()
    # One readable line: TF's reason ("corrupted record at N"), not its op wrapper.
    assert re.search(r"corrupt shard: corrupted record at \d+", error.readable()), error.readable()
    assert "function_node" not in error.readable() and "[Op:" not in error.readable()
    assert_nothing_published(store)
