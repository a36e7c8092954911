"""Every bad input exits non-zero with one readable line naming the file, and publishes nothing."""
import shutil

import numpy as np

from rlstore.cli import main
from rlstore.store import Store
from tests.helpers import publish_episodes, vector_episode


def _run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_nothing_published(root, name="ds"):
    store = Store(root)
    assert store.versions(name) == []
    staging = root / name / "staging"
    assert not staging.exists() or not list(staging.iterdir())


def _good_logs(directory, count=3):
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        e = vector_episode(5, i)
        np.savez(directory / f"a{i}.npz", observation=e["steps"]["observation"], action=e["steps"]["action"],
                 reward=e["steps"]["reward"], discount=e["steps"]["discount"])
    return directory


def _check(capsys, tmp_path, args, *expected):
    code, _, err = _run(capsys, "--store", str(tmp_path / "store"), "ingest", "--dataset", "ds", *args)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for text in expected:
        assert text in lines[0], lines[0]
    _assert_nothing_published(tmp_path / "store")
    return lines[0]


def test_missing_path(capsys, tmp_path):
    _check(capsys, tmp_path, [str(tmp_path / "nope")], str(tmp_path / "nope"), "no such file")


def test_empty_directory(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    _check(capsys, tmp_path, [str(tmp_path / "empty")], str(tmp_path / "empty"), "empty")
    _check(capsys, tmp_path, ["--format", "rlds", str(tmp_path / "empty")], str(tmp_path / "empty"), "empty")


def test_directory_that_is_not_rlds(capsys, tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("hello")
    _check(capsys, tmp_path, ["--format", "rlds", str(tmp_path / "notes")], str(tmp_path / "notes"), "dataset_info.json")


def test_corrupt_shard(capsys, tmp_path):
    source = Store(tmp_path / "source")
    publish_episodes(source, "src", [vector_episode(40, i) for i in range(4)])
    segment = source.segment_dirs("src")[0]
    copy = tmp_path / "copy"
    shutil.copytree(segment, copy)
    shard = next(copy.glob("*.tfrecord-*"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2: len(data) // 2 + 8] = b"\xff" * 8
    shard.write_bytes(bytes(data))
    _check(capsys, tmp_path, ["--format", "rlds", str(copy)], str(shard), "corrupt")


def test_npz_without_action(capsys, tmp_path):
    logs = _good_logs(tmp_path / "logs")
    bad = logs / "0bad.npz"
    np.savez(bad, observation=np.zeros((5, 4), np.float32), reward=np.zeros(5, np.float32), discount=np.ones(5, np.float32))
    _check(capsys, tmp_path, [str(logs)], str(bad), "episode 0", "field 'action'")


def test_unequal_lengths_found_by_a_worker(capsys, tmp_path):
    logs = _good_logs(tmp_path / "logs")
    bad = logs / "z_bad.npz"
    np.savez(bad, observation=np.zeros((5, 4), np.float32), action=np.zeros(4, np.int64),
             reward=np.zeros(5, np.float32), discount=np.ones(5, np.float32))
    _check(capsys, tmp_path, [str(logs)], str(bad), "field 'action'", "unequal length")


def test_nan_reward_found_by_a_worker(capsys, tmp_path):
    logs = _good_logs(tmp_path / "logs")
    bad = logs / "z_nan.npz"
    reward = np.zeros(5, np.float32)
    reward[3] = np.nan
    np.savez(bad, observation=np.zeros((5, 4), np.float32), action=np.zeros(5, np.int64),
             reward=reward, discount=np.ones(5, np.float32))
    _check(capsys, tmp_path, [str(logs)], str(bad), "episode 0", "step 3", "field 'steps/reward'", "NaN")
