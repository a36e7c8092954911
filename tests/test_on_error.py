"""--on-error=fail stops at the first bad episode and publishes nothing; --on-error=skip publishes the
good episodes and keeps the bad ones, one JSON line each with its reason, in rejects.jsonl."""
import hashlib
import json

import numpy as np
import pytest

from rlstore.cli import main
from rlstore.store import Store
from tests.format_fixtures import write_d4rl_file
from tests.helpers import vector_episode


def _save(path, **arrays):
    np.savez(path, **arrays)
    return path


def _good(directory, index):
    e = vector_episode(5, index)
    return _save(directory / f"good{index}.npz", observation=e["steps"]["observation"], action=e["steps"]["action"],
                 reward=e["steps"]["reward"], discount=e["steps"]["discount"])


def _bad_inputs(directory):
    """Bad npz episodes, by file name → (step, field, words of the reason); None when unknown."""
    observation, action = np.zeros((5, 4), np.float32), np.zeros(5, np.int64)
    reward, discount = np.zeros(5, np.float32), np.ones(5, np.float32)
    nan_observation = observation.copy()
    nan_observation[2, 1] = np.nan
    nan_reward = reward.copy()
    nan_reward[1] = np.inf
    _save(directory / "nan_observation.npz", observation=nan_observation, action=action, reward=reward, discount=discount)
    _save(directory / "inf_reward.npz", observation=observation, action=action, reward=nan_reward, discount=discount)
    _save(directory / "string_actions.npz", observation=observation, action=np.array(["up"] * 5), reward=reward,
          discount=discount)
    _save(directory / "object_arrays.npz", observation=observation, action=np.array([{"a": 1}] * 5, dtype=object),
          reward=reward, discount=discount)
    _save(directory / "unequal_lengths.npz", observation=observation, action=action[:4], reward=reward, discount=discount)
    return {"nan_observation.npz": (2, "steps/observation", "NaN"), "inf_reward.npz": (1, "steps/reward", "infinite"),
            "string_actions.npz": (None, "action", "numeric"), "object_arrays.npz": (None, "action", "object arrays"),
            "unequal_lengths.npz": (None, "action", "unequal length")}


def _run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _nothing_published(root, name="ds"):
    assert Store(root).versions(name) == []
    staging = root / name / "staging"
    assert not staging.exists() or not list(staging.iterdir())


@pytest.fixture(scope="module")
def mixed_logs(tmp_path_factory):
    """Four good episodes and five bad ones in one directory."""
    directory = tmp_path_factory.mktemp("mixed")
    good = [_good(directory, i) for i in range(4)]
    return directory, good, _bad_inputs(directory)


@pytest.fixture(scope="module")
def skipped(tmp_path_factory, mixed_logs):
    """`ingest --on-error=skip` of the mixed directory, with one good file also named on its own."""
    directory, good, _ = mixed_logs
    root = tmp_path_factory.mktemp("skip_store")
    code = main(["--store", str(root), "ingest", "--dataset", "ds", "--on-error=skip", str(directory), str(good[0])])
    return root, code


def test_fail_is_the_default_and_names_the_first_bad_episode(capsys, tmp_path, mixed_logs):
    directory, _, bad = mixed_logs
    code, out, err = _run(capsys, "--store", str(tmp_path), "ingest", "--dataset", "ds", str(directory))
    assert code == 1 and out == ""
    line = err.strip()
    assert line.startswith("error: file ") and len(line.splitlines()) == 1 and "Traceback" not in err
    assert any(str(directory / name) in line for name in bad)  # whichever bad file a worker met first
    _nothing_published(tmp_path)


@pytest.mark.parametrize("name", ["nan_observation.npz", "string_actions.npz", "object_arrays.npz"])
def test_fail_message_names_file_episode_step_and_field(capsys, tmp_path, mixed_logs, name):
    directory, _, bad = mixed_logs
    step, field, words = bad[name]
    code, _, err = _run(capsys, "--store", str(tmp_path), "ingest", "--dataset", "ds", str(directory / name))
    assert code == 1
    expected = [f"file {directory / name}", "episode 0", f"field '{field}'", words]
    if step is not None:
        expected.append(f"step {step}")
    assert all(part in err for part in expected), err
    _nothing_published(tmp_path)


def test_skip_publishes_the_good_episodes_once(skipped, mixed_logs):
    root, code = skipped
    assert code == 0
    manifest = Store(root).manifest("ds")
    assert manifest.num_episodes == 4  # good0.npz was given twice and read once
    assert manifest.lineage["options"]["on_error"] == "skip"
    assert main(["--store", str(root), "validate", "ds"]) == 0


def test_skip_keeps_one_reject_line_per_bad_episode_with_the_version(skipped, mixed_logs):
    root, _ = skipped
    directory, _, bad = mixed_logs
    report = Store(root).manifest("ds").data["report"]
    entry = report["rejects"]
    path = root / "ds" / entry["path"]
    data = path.read_bytes()
    assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["count"] == len(bad) == report["counts"]["rejected_episodes"]
    lines = [json.loads(line) for line in data.decode().splitlines()]
    assert sorted(line["file"] for line in lines) == sorted(str(directory / name) for name in bad)
    for line in lines:
        step, field, words = bad[line["file"].rsplit("/", 1)[1]]
        assert (line["episode"], line["step"], line["field"]) == (0, step, field) and words in line["reason"]
        assert line["non_finite"] == (words in ("NaN", "infinite"))
    warnings = {w["kind"]: w for w in report["warnings"]}
    assert warnings["non_finite"]["count"] == 2 and warnings["rejected"]["count"] == 5


def test_skip_prints_a_count_of_warnings(capsys, tmp_path, mixed_logs):
    directory, good, _ = mixed_logs
    code, out, _ = _run(capsys, "--store", str(tmp_path), "ingest", "--dataset", "ds", "--on-error=skip",
                        str(good[1]), str(directory / "inf_reward.npz"), "--", "--direct_num_workers=1")
    assert code == 0
    assert "published ds@1: 1 episodes" in out
    assert "2 warning(s); 1 rejected, listed in " in out and "rejects.jsonl" in out
    assert "non_finite: 1 episode(s) hold NaN or infinite values" in out


def test_skip_rejects_unreadable_hdf5_files_and_ingests_the_rest(capsys, tmp_path):
    good = tmp_path / "good.hdf5"
    write_d4rl_file(good, [(4, "terminal"), (3, "timeout")])
    truncated = tmp_path / "truncated.hdf5"
    write_d4rl_file(truncated, [(4, "terminal")] * 50)
    truncated.write_bytes(truncated.read_bytes()[:2000])
    unequal = tmp_path / "unequal.hdf5"
    write_d4rl_file(unequal, [(4, "terminal")], rewards=np.zeros(3, np.float32))
    store = str(tmp_path / "store")
    args = ["--store", store, "ingest", "--dataset", "ds", "--format", "d4rl"]
    code, _, err = _run(capsys, *args, str(good), str(truncated))
    assert code == 1 and str(truncated) in err
    code, out, _ = _run(capsys, *args, "--on-error", "skip", str(good), str(truncated), str(unequal))
    assert code == 0 and "; 2 rejected, listed in" in out
    manifest = Store(store).manifest("ds")
    assert manifest.num_episodes == 2
    lines = (tmp_path / "store" / "ds" / manifest.data["report"]["rejects"]["path"]).read_text().splitlines()
    reasons = {json.loads(line)["file"]: json.loads(line)["reason"] for line in lines}
    assert "not a readable HDF5 file" in reasons[str(truncated)] and "unequal length" in reasons[str(unequal)]


def test_skip_with_nothing_good_publishes_nothing(capsys, tmp_path, mixed_logs):
    directory, _, _ = mixed_logs
    code, _, err = _run(capsys, "--store", str(tmp_path), "ingest", "--dataset", "ds", "--on-error=skip",
                        str(directory / "nan_observation.npz"), str(directory / "string_actions.npz"))
    assert code == 1 and "no good episodes" in err
    _nothing_published(tmp_path)
