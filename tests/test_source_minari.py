"""The minari format: datasets written by the real minari package (HDF5 and Arrow backends) go
through the Beam pipeline and read back with stock TFDS; every bad-input case names its file."""
import json
import shutil

import numpy as np
import pytest

from rlstore.pipelines.ingest import ingest, plan
from rlstore.errors import BadInputError
from rlstore.store import Store
from tests.format_fixtures import assert_rejected, assert_trees_equal, stock_read, write_minari_dataset

IN_MEMORY = ["--direct_running_mode=in_memory"]  # the real DirectRunner, without starting worker processes


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("minari")
    return {backend: write_minari_dataset(root, backend) for backend in ("hdf5", "arrow")}


@pytest.fixture(scope="module", params=["hdf5", "arrow"])
def ingested(request, tmp_path_factory, datasets):
    """Each backend through the pipeline: HDF5 named explicitly, Arrow found by auto-detection."""
    path, written = datasets[request.param]
    store = Store(tmp_path_factory.mktemp("store"))
    manifest = ingest(store, "ds", [str(path)], format="minari" if request.param == "hdf5" else "auto",
                      format_options={"episodes_per_item": 2}, beam_args=IN_MEMORY)
    episodes = {int(e["episode_id"]): e for e in stock_read(store.segment_dirs("ds"))}
    return path, written, manifest, episodes


@pytest.fixture(scope="module")
def minari_images(datasets):
    """Camera frames as minari itself decodes its JPEGs. Both backends stored the same frames with the
    same encoder; minari 0.5.3 cannot read back its own Arrow infos (scalar shape ''), so its HDF5 view serves."""
    import minari

    path, _ = datasets["hdf5"]
    return {e.id: e.observations["camera"] for e in minari.MinariDataset(path / "data").iterate_episodes()}


def test_round_trip_keeps_spaces_flags_and_episode_metadata(ingested, minari_images):
    _, written, manifest, episodes = ingested
    assert manifest.lineage["format"] == "minari" and sorted(episodes) == [0, 1, 2]
    for source in written:
        steps, length = episodes[source["id"]]["steps"], len(source["rewards"]) + 1
        observations = source["observations"]
        expected_observation = {
            "pos": observations["pos"],
            "inner": {"0": observations["inner"][0], "1": observations["inner"][1]},
            "note": np.array([s.encode() for s in observations["note"]]),
            "camera": minari_images[source["id"]],
        }
        assert_trees_equal(expected_observation, steps["observation"])
        zero = {"0": np.zeros(1, np.int64), "1": np.zeros((1, 2), np.float32)}
        assert_trees_equal({k: np.concatenate([source["actions"][int(k)], zero[k]]) for k in zero}, steps["action"])
        np.testing.assert_array_equal(steps["reward"], np.append(source["rewards"], 0.0))
        np.testing.assert_array_equal(steps["infos"]["x"], source["infos"]["x"])
        terminated = bool(source["terminations"][-1])
        assert steps["is_terminal"].tolist() == [False] * (length - 1) + [terminated]
        assert steps["discount"][-2] == (0.0 if terminated else 1.0)
        assert steps["is_last"][-1] and steps["is_first"][0] and len(steps["reward"]) == length
        assert episodes[source["id"]]["seed"] == (-1 if source["seed"] is None else source["seed"])


def test_terminations_and_truncations_stay_apart(ingested):
    _, written, _, episodes = ingested
    ends = {e["id"]: ("terminated" if e["terminations"][-1] else "truncated" if e["truncations"][-1] else "unfinished")
            for e in written}
    assert ends == {0: "terminated", 1: "truncated", 2: "unfinished"}
    assert [bool(episodes[i]["steps"]["is_terminal"][-1]) for i in range(3)] == [True, False, False]


def test_lineage_hashes_files_once_and_keeps_dataset_metadata(ingested):
    path, _, manifest, _ = ingested
    sources = [s["path"] for s in manifest.lineage["sources"]]
    assert len(sources) == len(set(sources)) and str(path / "data" / "metadata.json") in sources
    (run_metadata,) = manifest.lineage["run_metadata"].values()
    assert run_metadata["algorithm_name"] == "random" and run_metadata["minari_version"]


def test_detected_from_dataset_data_dir_or_namespace(datasets):
    path, _ = datasets["hdf5"]
    for given in (path, path / "data"):
        source_format, items = plan([str(given)], "auto")[:2]
        assert source_format.name == "minari" and [i["episodes"] for i in items] == [[0, 1, 2]]
    source_format, items = plan([str(path.parent)], "auto")[:2]
    assert sorted(i["backend"] for i in items) == ["arrow", "hdf5"]


def _copy(datasets, backend, tmp_path):
    source, _ = datasets[backend]
    copy = tmp_path / "copy"
    shutil.copytree(source, copy)
    return copy / "data"


def test_metadata_json_that_is_not_json(datasets, tmp_path):
    data = _copy(datasets, "arrow", tmp_path)
    (data / "metadata.json").write_text('{"data_format": "arrow", ')
    store = Store(tmp_path / "store")
    with pytest.raises(BadInputError) as raised:
        ingest(store, "ds", [str(data.parent)])
    assert_rejected(raised.value, data / "metadata.json", store)
    assert "not valid JSON" in raised.value.readable()


def test_arrow_file_missing_a_column(datasets, tmp_path):
    import pyarrow as pa

    data = _copy(datasets, "arrow", tmp_path)
    part = data / "1" / "part-0.arrow"
    with pa.ipc.open_file(part) as reader:
        table = reader.read_all().drop_columns(["rewards"])
    with pa.ipc.new_file(part, table.schema) as writer:
        writer.write_table(table)
    store = Store(tmp_path / "store")
    with pytest.raises(BadInputError) as raised:
        ingest(store, "ds", [str(data.parent)], format="minari")
    assert_rejected(raised.value, part, store, episode=1, field="rewards")
    assert "column is missing" in raised.value.readable()


def test_truncated_hdf5_file(datasets, tmp_path):
    data = _copy(datasets, "hdf5", tmp_path)
    main = data / "main_data.hdf5"
    main.write_bytes(main.read_bytes()[:4096])
    store = Store(tmp_path / "store")
    with pytest.raises(BadInputError) as raised:
        ingest(store, "ds", [str(data.parent)], format="minari")
    assert_rejected(raised.value, main, store)
    assert "not a readable HDF5 file" in raised.value.readable()


def test_hdf5_arrays_of_unequal_length_and_nan_observation(datasets, tmp_path):
    import h5py

    data = _copy(datasets, "hdf5", tmp_path)
    main = data / "main_data.hdf5"
    with h5py.File(main, "a") as h5:
        pos = h5["episode_1/observations/pos"]
        values = pos[()]
        values[2, 1] = np.nan
        pos[...] = values
        terminations = h5["episode_2/terminations"][()]
        del h5["episode_2/terminations"]
        h5["episode_2/terminations"] = terminations[:-1]
    store = Store(tmp_path / "store")
    with pytest.raises(BadInputError) as raised:
        ingest(store, "ds", [str(data.parent)], format="minari")
    assert_rejected(raised.value, main, store, episode=1, step=2, field="steps/observation/pos")
    assert "NaN" in raised.value.readable()
    source_format, items = plan([str(data.parent)], "minari")[:2]
    with pytest.raises(BadInputError) as raised:
        list(source_format.read({**items[0], "episodes": [2]}))
    assert (raised.value.location.episode, raised.value.location.field) == (2, "terminations")
    assert "unequal length" in raised.value.readable()


def test_episode_count_must_match_metadata(datasets, tmp_path):
    data = _copy(datasets, "arrow", tmp_path)
    shutil.rmtree(data / "2")
    store = Store(tmp_path / "store")
    with pytest.raises(BadInputError) as raised:
        ingest(store, "ds", [str(data.parent)])
    assert_rejected(raised.value, data / "metadata.json", store, field="total_episodes")
    metadata = json.loads((data / "metadata.json").read_text())
    assert metadata["total_episodes"] == 3
