"""The d4rl format: the same episodes as TFDS's own D4RL conversion, through the Beam pipeline,
read back with stock TFDS; time limits, slices and every bad-input case."""
import hashlib

import numpy as np
import pytest

from rlstore.pipelines.ingest import ingest, plan
from rlstore.pipelines.notes import pop_notes
from rlstore.pipelines.sources.d4rl import D4rlFormat
from rlstore.cli import main
from rlstore.errors import BadInputError
from rlstore.store import Store
from tests.format_fixtures import assert_rejected, assert_trees_equal, stock_read, write_d4rl_file

EPISODES = [(4, "terminal"), (3, "timeout"), (5, "terminal"), (2, "timeout")]
TRAILING = 3


@pytest.fixture(scope="module")
def d4rl_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("d4rl") / "hopper-medium-v2.hdf5"
    return path, write_d4rl_file(path, EPISODES, trailing=TRAILING)


@pytest.fixture(scope="module")
def d4rl_store(tmp_path_factory, d4rl_file):
    path, _ = d4rl_file
    store = Store(tmp_path_factory.mktemp("store"))
    ingest(store, "hopper", [str(path)], format="d4rl", format_options={"steps_per_item": 5})
    return store


@pytest.fixture(scope="module")
def read_back(d4rl_store, d4rl_file):
    """Episodes from the store in file order (matched on their first observation)."""
    _, arrays = d4rl_file
    episodes = stock_read(d4rl_store.segment_dirs("hopper"))
    starts = np.cumsum([0] + [length for length, _ in EPISODES])
    by_first = {e["steps"]["observation"][0].tobytes(): e for e in episodes}
    return [by_first[arrays["observations"][start].tobytes()] for start in starts]


def _tfds_episodes(path):
    from tensorflow_datasets.d4rl import dataset_utils

    return [episode for _, episode in dataset_utils.generate_examples(str(path))]


def _as_arrays(tree):
    return {k: _as_arrays(v) for k, v in tree.items()} if isinstance(tree, dict) else np.asarray(tree)


def test_same_episodes_as_tfds_d4rl_builders(read_back, d4rl_file):
    path, arrays = d4rl_file
    theirs = _tfds_episodes(path)
    assert len(read_back) == len(theirs) == len(EPISODES) + 1
    ends = np.cumsum([length for length, _ in EPISODES] + [TRAILING])
    for ours, expected, end in zip(read_back, theirs, ends):
        expected = _as_arrays(expected)
        # TFDS gives every episode the file's last next_observation; each episode gets its own here.
        np.testing.assert_array_equal(expected["steps"]["observation"][-1], arrays["next_observations"][-1])
        expected["steps"]["observation"][-1] = arrays["next_observations"][end - 1]
        assert_trees_equal(expected, ours)


def test_terminal_and_timeout_episodes(read_back, d4rl_file):
    _, arrays = d4rl_file
    terminal, timeout = read_back[0]["steps"], read_back[1]["steps"]
    assert len(terminal["reward"]) == 4 + 1 and len(timeout["reward"]) == 3 + 1  # final observation as an extra step
    assert terminal["is_terminal"].tolist() == [False] * 4 + [True]
    assert terminal["discount"].tolist() == [1, 1, 1, 0, 0]
    assert not timeout["is_terminal"].any() and timeout["discount"].tolist() == [1, 1, 1, 0]  # bootstrap across
    np.testing.assert_array_equal(terminal["observation"][-1], arrays["next_observations"][3])
    np.testing.assert_array_equal(timeout["observation"][-1], arrays["next_observations"][6])
    for steps in (terminal, timeout):
        assert not steps["action"][-1].any() and steps["reward"][-1] == 0


def test_trailing_unfinished_episode_is_kept_as_truncated(read_back, d4rl_file):
    _, arrays = d4rl_file
    last = read_back[-1]["steps"]
    assert len(last["reward"]) == TRAILING + 1 and last["is_last"][-1] and not last["is_terminal"].any()
    assert last["discount"][-2] == 1.0
    np.testing.assert_array_equal(last["observation"][:-1], arrays["observations"][-TRAILING:])


def test_infos_are_step_metadata_and_metadata_is_episode_metadata(read_back, d4rl_file):
    _, arrays = d4rl_file
    steps = read_back[0]["steps"]
    np.testing.assert_array_equal(steps["infos"]["qpos"], np.concatenate([arrays["infos/qpos"][:4], np.zeros((1, 2))]))
    assert steps["infos"]["qpos"].dtype == np.float64 and steps["infos"]["goal"][-1] == 0
    for episode in read_back:
        assert episode["algorithm"] == b"SAC" and episode["iteration"] == 7
        np.testing.assert_array_equal(episode["policy"]["fc0"]["weight"], arrays["metadata/policy/fc0/weight"])


def test_file_is_split_into_work_items_of_whole_episodes_and_hashed_once(d4rl_store, d4rl_file):
    path, _ = d4rl_file
    source_format, items = plan([str(path)], "auto", {"steps_per_item": 5})[:2]
    assert source_format.name == "d4rl"
    assert [(i["start"], i["stop"], i["episode"]) for i in items] == [(0, 7, 0), (7, 12, 2), (12, 17, 3)]
    assert [len(source_format.source_files(i)) for i in items] == [1, 0, 0]
    lineage = d4rl_store.manifest("hopper").lineage
    assert lineage["format"] == "d4rl" and lineage["options"]["format_options"] == {"steps_per_item": 5}
    assert lineage["sources"] == [{"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                                   "bytes": path.stat().st_size}]


def test_without_next_observations_matches_tfds_too(tmp_path):
    path = tmp_path / "old.hdf5"
    write_d4rl_file(path, [(3, "terminal"), (4, "timeout")], trailing=2, next_observations=False)
    fmt = D4rlFormat()
    ours = [episode for item in fmt.work_items([path]) for _, episode in fmt.read(item)]
    notes = [pop_notes(episode) for episode in ours]  # reader notes go to the report, not the data
    assert [[n["kind"] for n in episode_notes] for episode_notes in notes] == [[], [], ["truncated_final_episode"]]
    theirs = [_as_arrays(e) for e in _tfds_episodes(path)]
    terminal, timeout, trailing = ours
    assert not terminal["steps"]["observation"][-1].any()  # a terminal episode ends on a zero observation
    assert len(timeout["steps"]["reward"]) == 4  # no final observation: the last recorded one ends the episode
    for mine, expected in zip(ours, theirs):
        for key in ("action", "reward", "discount"):  # TFDS leaves the dropped last transition's values in place
            expected["steps"][key][-1] = 0
        assert_trees_equal(expected, mine)


def test_no_timeouts_is_refused_unless_max_episode_steps(tmp_path, capsys):
    path = tmp_path / "v0.hdf5"
    write_d4rl_file(path, [(5, "terminal")], trailing=7, timeouts=False, extra=False)
    store = Store(tmp_path / "store")
    with pytest.raises(BadInputError) as raised:
        ingest(store, "ds", [str(path)], format="d4rl")
    assert_rejected(raised.value, path, store, field="timeouts")
    assert "--max-episode-steps" in raised.value.readable()
    code = main(["--store", str(tmp_path / "store"), "ingest", "--dataset", "ds", "--max-episode-steps", "5", str(path),
                 "--", "--direct_running_mode=in_memory"])
    assert code == 0, capsys.readouterr().err
    manifest = store.manifest("ds")
    assert manifest.lineage["options"]["format_options"] == {"max_episode_steps": 5}
    episodes = stock_read(store.segment_dirs("ds"))
    lengths = sorted((len(e["steps"]["reward"]), bool(e["steps"]["is_terminal"][-1])) for e in episodes)
    # 5 steps ending on a terminal, then 7 steps: 5 (time limit) + 2 (unfinished); each + a final observation
    assert lengths == [(3, False), (6, False), (6, True)]


def test_truncated_hdf5_file(tmp_path):
    path = tmp_path / "cut.hdf5"
    write_d4rl_file(path, EPISODES)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    store = Store(tmp_path / "store")
    with pytest.raises(BadInputError) as raised:
        ingest(store, "ds", [str(path)])
    assert_rejected(raised.value, path, store)
    assert "not a readable HDF5 file" in raised.value.readable()


def test_arrays_of_unequal_length(tmp_path):
    path = tmp_path / "ragged.hdf5"
    write_d4rl_file(path, EPISODES, rewards=np.zeros(10, np.float32))
    store = Store(tmp_path / "store")
    with pytest.raises(BadInputError) as raised:
        ingest(store, "ds", [str(path)], format="d4rl")
    assert_rejected(raised.value, path, store, field="rewards")
    assert "unequal length" in raised.value.readable()


def test_string_actions(tmp_path):
    path = tmp_path / "words.hdf5"
    write_d4rl_file(path, [(2, "terminal")], actions=np.array([b"left", b"right"]), extra=False)
    store = Store(tmp_path / "store")
    with pytest.raises(BadInputError) as raised:
        ingest(store, "ds", [str(path)], format="d4rl")
    assert_rejected(raised.value, path, store, field="actions")
    assert "must be numeric" in raised.value.readable()


def test_nan_reward_names_episode_step_and_field(tmp_path):
    path = tmp_path / "nan.hdf5"
    rewards = np.zeros(sum(n for n, _ in EPISODES), np.float32)
    rewards[8] = np.nan  # episode 2 starts at row 7
    write_d4rl_file(path, EPISODES, rewards=rewards)
    store = Store(tmp_path / "store")
    with pytest.raises(BadInputError) as raised:
        ingest(store, "ds", [str(path)], format="d4rl")
    assert_rejected(raised.value, path, store, episode=2, step=1, field="steps/reward")
    assert "NaN" in raised.value.readable()


def test_report_warns_of_truncated_tail_and_observation_jumps(tmp_path):
    episodes = [(4, "terminal"), (5, "timeout")]
    arrays = write_d4rl_file(tmp_path / "jumpy.hdf5", episodes, trailing=3, extra=False)
    next_observations = arrays["next_observations"].copy()
    next_observations[1] += 10.0  # out of sync inside the first episode
    import h5py

    with h5py.File(tmp_path / "jumpy.hdf5", "a") as h5:
        h5["next_observations"][...] = next_observations
    manifest = ingest(Store(tmp_path / "store"), "jumpy", [str(tmp_path / "jumpy.hdf5")], format="d4rl")
    warnings = {w["kind"]: w for w in manifest.data["report"]["warnings"]}
    assert warnings["observation_jump"]["count"] == 1
    assert warnings["observation_jump"]["examples"][0]["step"] == 1
    assert warnings["truncated_final_episode"]["count"] == 1
