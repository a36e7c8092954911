"""The npz format: round trip, dict observations, terminal inference and every bad-input case."""
import numpy as np
import pytest

from rlstore.pipelines.sources.npz import NpzFormat, episode_from_arrays, write_episode
from rlstore.errors import BadInputError, Location
from tests.helpers import rich_episode, steps_equal


def _read_one(path):
    [(where, episode)] = list(NpzFormat().read({"path": str(path)}))
    return where, episode


def test_round_trip_with_dicts_images_and_metadata(tmp_path):
    original = rich_episode(6, seed=3)
    write_episode(tmp_path / "e.npz", original)
    keys = set(np.load(tmp_path / "e.npz").files)
    assert {"observation/pixels", "observation/state/pos", "action", "reward", "discount", "is_terminal",
            "metadata/temperature", "episode/episode_id", "episode/task"} <= keys
    where, episode = _read_one(tmp_path / "e.npz")
    assert where == Location(file=str(tmp_path / "e.npz"), episode=0)
    assert steps_equal(original, episode["steps"])
    assert episode["episode_id"] == 3 and episode["task"] == b"reach"


def test_plain_numpy_file_with_inferred_terminal(tmp_path):
    np.savez(tmp_path / "e.npz", observation=np.zeros((4, 2), np.float32), action=np.array([1, 0, 1, 7]),
             reward=np.array([0.0, 0.0, 1.0, 5.0], np.float32), discount=np.array([1, 1, 0, 1], np.float32))
    _, episode = _read_one(tmp_path / "e.npz")
    steps = episode["steps"]
    assert steps["is_terminal"].tolist() == [False, False, False, True]
    assert steps["action"][-1] == 0 and steps["reward"][-1] == 0  # the last step follows no action


def test_truncated_episode_keeps_bootstrap_discount():
    arrays = dict(observation=np.zeros((3, 2), np.float32), action=np.zeros(3, np.int64),
                  reward=np.ones(3, np.float32), discount=np.ones(3, np.float32), is_terminal=np.bool_(False))
    steps = episode_from_arrays(arrays)["steps"]
    assert not steps["is_terminal"].any() and steps["discount"][-2] == 1.0


def _save(path, **overrides):
    arrays = dict(observation=np.zeros((4, 2), np.float32), action=np.zeros(4, np.int64),
                  reward=np.zeros(4, np.float32), discount=np.ones(4, np.float32))
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


@pytest.mark.parametrize("overrides, field, message", [
    ({"action": None}, "action", "required array is missing"),
    ({"reward": np.zeros(3, np.float32)}, "reward", "unequal length"),
    ({"action": np.array(["left", "right", "left", "left"])}, "action", "must be numeric"),
    ({"mystery": np.zeros(4)}, "mystery", "unknown key"),
    ({"is_terminal": np.array([True, False, False, True])}, "is_terminal", "only be True on the last step"),
])
def test_bad_files_name_file_and_field(tmp_path, overrides, field, message):
    path = _save(tmp_path / "bad.npz", **overrides)
    with pytest.raises(BadInputError) as raised:
        _read_one(path)
    assert raised.value.location.file == str(path)
    assert raised.value.location.field == field
    assert message in raised.value.readable()


def test_object_arrays_are_refused_not_unpickled(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, observation=np.zeros((2, 2), np.float32), action=np.array([{"a": 1}, {"b": 2}], dtype=object),
             reward=np.zeros(2, np.float32), discount=np.ones(2, np.float32))
    with pytest.raises(BadInputError) as raised:
        _read_one(path)
    assert raised.value.location.field == "action" and "unpickling" in raised.value.readable()


def test_not_a_zip(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"definitely not a zip archive")
    with pytest.raises(BadInputError, match="not a readable .npz"):
        _read_one(path)


def test_directory_expansion_and_duplicates(tmp_path, vector_logs):
    directory, paths, _ = vector_logs
    items = NpzFormat().work_items([directory, paths[0]])
    assert len(items) == len(paths)
