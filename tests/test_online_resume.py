"""Resuming an online run after a real `kill -9` of its supervisor at a random (seeded) moment:
no child survives the supervisor, `--out` on the dead run asks for `--resume`, the resumed run
plays the rest of its budget, and the write-back dataset holds exactly the episodes the run
manifest lists, once each, every version valid."""
from __future__ import annotations

import json
import random
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from rlstore.cli import main
from rlstore.envs import make_environment, make_expert
from rlstore.rollout import run_episodes
from rlstore.store import Store
from rlstore.validation import validate
from tests.helpers import publish_episodes

REPO = Path(__file__).resolve().parent.parent
BUDGET = 800
CATCH_STEPS = 9  # env steps of every catch episode
KILL_SEED = 16


def _command(store: Store, out: Path, *extra: str) -> list[str]:
    return ["run", "dqfd", "--env", "catch", "--demos", "catch_expert@1", "--env-steps", str(BUDGET), "--out", str(out),
            "--write-back", "catch_resumed", "--commit-every", "5", "--pretrain-steps", "50", "--eval-every", "0",
            "--final-eval-episodes", "5", "--checkpoint-every", "1", "--batch-size", "32", "--hidden-sizes",
            "32,32", "--target-update-period", "100", "--min-replay-size", "100", *extra]


def _rlstore(store: Store, *args: str) -> list[str]:
    return [str(REPO / ".venv" / "bin" / "rlstore"), "--store", str(store.root), *args]


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """(store, run dir, the killed supervisor's children, those still alive 20 s later, the resumed run's
    summary and stderr)."""
    root = tmp_path_factory.mktemp("online_resume")
    store = Store(root / "store")
    env = make_environment("catch", seed=0)
    publish_episodes(store, "catch_expert", list(run_episodes(env, make_expert("catch", env), 30)))
    out = root / "run"
    process = subprocess.Popen(_rlstore(store, *_command(store, out)), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while len(store.versions("catch_resumed")) < 2 and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[1][-3000:]
            time.sleep(0.1)
        assert len(store.versions("catch_resumed")) >= 2, "the run never committed"
        time.sleep(random.Random(KILL_SEED).uniform(0.0, 2.0))  # a random moment while acting and learning
        family = psutil.Process(process.pid).children(recursive=True)
        process.kill()  # SIGKILL: the supervisor stops nothing itself
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    committed = store.manifest("catch_resumed").num_steps - store.manifest("catch_resumed").num_episodes
    assert committed < BUDGET, "the run finished before the kill: nothing is left to resume"
    gone, alive = psutil.wait_procs(family, timeout=20)
    resumed = subprocess.run(_rlstore(store, *_command(store, out, "--resume", "--json")), capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return store, out, family, alive, json.loads(resumed.stdout), resumed.stderr


def test_children_do_not_outlive_a_killed_supervisor(killed_and_resumed):
    _, _, family, alive, _, _ = killed_and_resumed
    assert len(family) >= 4  # replay, learner, actor and the actor's write-back worker
    assert alive == []


def test_the_resumed_run_plays_exactly_its_budget(killed_and_resumed):
    store, out, _, _, summary, stderr = killed_and_resumed
    manifest = json.loads((out / "run.json").read_text())
    sessions = manifest["sessions"]
    assert len(sessions) == 2 and sessions[0]["finished"] is None and sessions[1]["finished"]
    assert sessions[1]["start_step"] > 0  # the learner continued from its checkpoint
    assert sessions[1]["end_step"] >= sessions[1]["start_step"]
    assert 0 < sum(sessions[1]["actor_start_steps"]) < BUDGET
    latest = store.manifest("catch_resumed")
    env_steps = latest.num_steps - latest.num_episodes  # every episode played to the end was committed
    assert BUDGET <= env_steps < BUDGET + CATCH_STEPS
    assert summary["env_steps"] == env_steps and summary["final_evaluation"]["episodes"] == 5
    assert f"[learner] resumed from {out / 'checkpoints'}" in stderr
    assert "[replay] serving at port" in stderr and f"(restored from {out / 'replay'}" in stderr


def test_no_committed_episode_is_lost_or_duplicated(killed_and_resumed):
    import tensorflow_datasets as tfds

    store, out, _, _, _, _ = killed_and_resumed
    write_back = json.loads((out / "run.json").read_text())["online"]["write_back"]
    segments = write_back["segments"]
    assert {s["session"] for s in segments} == {0, 1}
    assert write_back["versions"] == store.versions("catch_resumed") == sorted({s["version"] for s in segments})
    expected: dict[str, int] = {}
    for segment in segments:
        first, end = segment["run_episodes"]
        assert end - first == segment["episodes"]
        directory = store.root / "catch_resumed" / "segments" / segment["segment"]
        episodes = list(tfds.builder_from_directory(str(directory)).as_dataset(split="train"))
        ids = [episode["episode_id"].numpy().decode() for episode in episodes]
        assert sorted(ids) == sorted(f"{segment['writer_run_id']}:{k}" for k in range(first, end))
        assert sum(len(episode["steps"]) for episode in episodes) == segment["steps"]
        expected.update({episode_id: 1 for episode_id in ids})
    stored = [episode["episode_id"].numpy().decode() for episode in store.load("catch_resumed")]
    assert len(stored) == len(set(stored)) and set(stored) == set(expected)
    for version in store.versions("catch_resumed"):
        assert validate(store, f"catch_resumed@{version}", check_episodes=False) == []
    assert validate(store, "catch_resumed") == []
    assert not any((store.root / "catch_resumed" / "staging").iterdir())  # the killed writer's staging is gone


def _argv(store: Store, out: Path, *extra: str, **replaced: str) -> list[str]:
    """The run's command line with some flags' values replaced (--env-steps as env_steps=...)."""
    argv = ["--store", str(store.root), *_command(store, out), *extra]
    for name, value in replaced.items():
        argv[argv.index("--" + name.replace("_", "-")) + 1] = value
    return argv


def test_an_existing_run_needs_resume_and_the_same_agent_env_and_demos(killed_and_resumed, capsys):
    store, out, _, _, _, _ = killed_and_resumed
    capsys.readouterr()
    for argv, wanted in ((_argv(store, out, env_steps="2400"), "pass --resume to continue it"),
                         (_argv(store, out, "--resume", env="deep_sea", env_steps="2400"),
                          "cannot resume: --env is 'deep_sea', the run used 'catch'"),
                         (_argv(store, out, "--resume", demos="catch_other", env_steps="2400"),
                          "cannot resume: --demos is 'catch_other', the run used 'catch_expert@1'"),
                         (_argv(store, out, "--resume"), "holds a finished run")):
        assert main(argv) == 1
        lines = capsys.readouterr().err.strip().splitlines()
        assert "Traceback" not in "\n".join(lines) and wanted in lines[-1], lines
