"""DQfD online on real parts: real Reverb tables, real store versions, `rlstore run` as real processes
and a real SIGINT. One short online run on catch is shared by several tests."""
from __future__ import annotations

import fcntl
import json
import signal
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np
import psutil
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # Reverb's import-time distutils version check
    import reverb

from rlstore.agents.dqfd import replay
from rlstore.agents.dqfd.config import DQfDConfig
from rlstore.agents.dqfd.online import DQfDOnline
from rlstore.agents.logging import read_csv
from rlstore.agents.online.context import RunContext, specs_from_environment
from rlstore.agents.runs import RunDirectory
from rlstore.envs import make_environment, make_expert, make_policy
from rlstore.rollout import run_episodes
from rlstore.store import Store
from rlstore.validation import validate
from rlstore.writeback.replay import ReplayInserter
from tests.helpers import publish_episodes

REPO = Path(__file__).resolve().parent.parent
SMALL = ["--batch-size", "32", "--hidden-sizes", "32,32", "--target-update-period", "100", "--min-replay-size", "100"]


def _catch_demos(root: Path) -> Store:
    """30 expert episodes of catch (270 transitions) as version 1 of `catch_expert`."""
    store = Store(root)
    env = make_environment("catch", seed=0)
    publish_episodes(store, "catch_expert", list(run_episodes(env, make_expert("catch", env), 30)))
    return store


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    return _catch_demos(tmp_path_factory.mktemp("dqfd_online") / "store")


def _context(store: Store, run_dir: Path, config: DQfDConfig, env: str = "catch",
             demos: str = "catch_expert@1") -> RunContext:
    return RunContext(agent="dqfd", run_id="test", store=store, env=env, env_seed=0, demos=demos,
                      config=config, seed=0, specs=specs_from_environment(make_environment(env)),
                      run=RunDirectory.at(run_dir), actors=1, env_steps=1000, write_back=None, commit_every=1,
                      eval_every=0, eval_episodes=1)


def _priorities(client: reverb.Client, table: str, samples: int) -> dict[int, float]:
    return {sample.info.key: sample.info.priority
            for sample in client.sample(table, samples, emit_timesteps=False)}


@pytest.fixture(scope="module")
def tables(store, tmp_path_factory):
    """DQfD's two tables on a real Reverb server: demonstrations loaded, 20 random-policy episodes inserted
    by an actor's inserter."""
    # The rate limiter lets 2 x min_replay_size inserts in before any sample (error buffer = spi x min size).
    config = DQfDConfig(batch_size=32, hidden_sizes=(16,), demo_ratio=0.25, pretrain_steps=0, min_replay_size=100,
                        samples_per_insert=100.0)
    agent = DQfDOnline(_context(store, tmp_path_factory.mktemp("tables"), config))
    server = reverb.Server(agent.make_replay_tables())
    address = f"localhost:{server.port}"
    agent.fill_replay(address)
    env = make_environment("catch", seed=1)
    inserter = ReplayInserter(address, replay.layout(config))
    inserter.add([episode["steps"] for episode in run_episodes(env, make_policy("random", "catch", env, seed=1), 20)])
    inserter.close()
    yield agent, config, address
    server.stop()


def test_loaded_demonstrations_and_written_back_items_are_identical(store, tmp_path):
    """The same episodes bulk-loaded from the store and inserted the way actors insert give the same items."""
    config = DQfDConfig(demo_ratio=0.25, n_step=3, min_replay_size=200, samples_per_insert=100.0)
    agent = DQfDOnline(_context(store, tmp_path, config))
    server = reverb.Server(agent.make_replay_tables())
    address = f"localhost:{server.port}"
    try:
        agent.fill_replay(address)
        env = make_environment("catch", seed=0)  # the seed the demonstrations were recorded with
        inserter = ReplayInserter(address, replay.layout(config))
        inserter.add([episode["steps"] for episode in run_episodes(env, make_expert("catch", env), 30)])
        inserter.close()
        client = reverb.Client(address)
        items = {}
        for table in (replay.DEMO_TABLE, replay.REPLAY_TABLE):
            samples = client.sample(table, 4000, emit_timesteps=False, unpack_as_table_signature=True)
            items[table] = {sample.info.key: sample.data for sample in samples}

        def canonical(data: dict) -> tuple:
            return tuple(sorted((name, np.asarray(value).tobytes()) for name, value in data.items()))

        demo, agent_rows = ({canonical(d) for d in items[t].values()} for t in (replay.DEMO_TABLE, replay.REPLAY_TABLE))
        assert len(items[replay.DEMO_TABLE]) == len(items[replay.REPLAY_TABLE]) == 270
        assert "one_step_reward" in next(iter(items[replay.DEMO_TABLE].values()))
        assert demo == agent_rows
    finally:
        server.stop()


def test_batches_mix_demonstrations_at_the_set_ratio(tables):
    agent, config, address = tables
    split = replay.BatchSplit.of(config)
    assert (split.demo_rows, split.replay_rows) == (8, 24)
    shares = []
    for batch in replay.sampled_batches(address, split).take(5):
        is_demo = batch["is_demo"].numpy()
        shares.append(is_demo.mean())
        # each row carries its own table's size, so importance weights are per table
        sizes = batch["table_size"].numpy()
        assert set(sizes[is_demo]) == {270.0} and set(sizes[~is_demo]) == {180.0}
    assert np.allclose(shares, config.demo_ratio)


def test_priorities_change_in_reverb_after_a_learner_step(tables):
    agent, config, address = tables
    client = reverb.Client(address)
    # 4,000 samples see each of these few hundred equally likely items (a miss has odds below 1e-6)
    before = {table: _priorities(client, table, 4000) for table in (replay.DEMO_TABLE, replay.REPLAY_TABLE)}
    assert set(before[replay.DEMO_TABLE].values()) == {1.0 + config.demo_priority_bonus}
    assert set(before[replay.REPLAY_TABLE].values()) == {1.0}
    learner = agent.make_learner(address)
    metrics = learner.run(1)
    assert int(learner.steps.numpy()) == 1 and metrics["demo_fraction"] == pytest.approx(0.25)
    after = {table: _priorities(client, table, 4000) for table in (replay.DEMO_TABLE, replay.REPLAY_TABLE)}
    changed = {table: {key: p for key, p in after[table].items() if p != before[table].get(key, p)} for table in after}
    # a step updates the rows it sampled: |δ| + ε, plus ε_d for demonstrations
    assert 0 < len(changed[replay.DEMO_TABLE]) <= 8 and 0 < len(changed[replay.REPLAY_TABLE]) <= 24
    assert all(p >= config.demo_priority_bonus + config.priority_epsilon for p in changed[replay.DEMO_TABLE].values())
    assert all(p >= config.priority_epsilon for p in changed[replay.REPLAY_TABLE].values())


def test_demonstrations_with_mission_text_mix_with_the_actors_rows(tmp_path):
    """MiniGrid demonstrations keep their mission text, in the store and in the demonstration
    table; actors record none. A learner step samples both tables into one batch: text is dropped
    from the rows (the networks read none). Before, the demonstration table took the actors'
    signature and the learner's first sample failed on the extra text tensors."""
    spec = "gym:MiniGrid-MemoryS7-v0"
    store = Store(tmp_path / "store")
    env = make_environment(spec, seed=0)
    episodes = list(run_episodes(env, make_expert(spec, env), 4))
    publish_episodes(store, "memory_expert", episodes)
    steps = [episode["steps"] for episode in episodes]
    # the agent table's rate limiter takes min_replay_size to 2 x min_replay_size inserts before a sample
    items = sum(len(episode["action"]) for episode in steps)
    config = DQfDConfig(batch_size=8, hidden_sizes=(16,), demo_ratio=0.25, pretrain_steps=0,
                        min_replay_size=items // 2 + 1, samples_per_insert=100.0)
    agent = DQfDOnline(_context(store, tmp_path / "run", config, env=spec, demos="memory_expert@1"))
    server = reverb.Server(agent.make_replay_tables())
    address = f"localhost:{server.port}"
    try:
        agent.fill_replay(address)
        demo = reverb.Client(address).sample(replay.DEMO_TABLE, 1, emit_timesteps=False, unpack_as_table_signature=True)
        assert "mission" in next(demo).data["observation"]
        inserter = ReplayInserter(address, replay.layout(config))
        inserter.add(steps)  # as an actor inserts them
        inserter.close()
        batch = next(iter(replay.sampled_batches(address, replay.BatchSplit.of(config))))
        assert sorted(batch["observation"]) == ["direction", "image"]
        assert batch["is_demo"].numpy().tolist() == [True] * 2 + [False] * 6
        learner = agent.make_learner(address)
        learner.run(1)
        assert int(learner.steps.numpy()) == 1
    finally:
        server.stop()


# ---- `rlstore run dqfd` end to end ------------------------------------------------------------

def _rlstore(store: Store, *args: str) -> list[str]:
    return [str(REPO / ".venv" / "bin" / "rlstore"), "--store", str(store.root), *args]


@pytest.fixture(scope="session")
def online_run(tmp_path_factory):
    """A short online run on catch with write-back (one actor, 1,500 env steps): (run dir, summary, store).

    Run once per test session, whichever xdist worker gets there first: the others wait on a
    lock in the session's shared temporary directory and reuse the result (pytest-xdist's recipe).
    """
    shared = tmp_path_factory.getbasetemp().parent / "dqfd_online_run"
    shared.mkdir(exist_ok=True)
    out, result_file = shared / "run", shared / "summary.json"
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not result_file.exists():
            store = _catch_demos(shared / "store")
            command = _rlstore(store, "run", "dqfd", "--env", "catch", "--demos", "catch_expert@1", "--env-steps",
                               "1500", "--out", str(out), "--write-back", "catch_online", "--commit-every", "40",
                               "--compact-every", "2", "--pretrain-steps", "200", "--eval-every", "500", "--final-eval-episodes", "30",
                               "--json", *SMALL)
            result = subprocess.run(command, capture_output=True, text=True, timeout=300)
            assert result.returncode == 0, result.stderr[-3000:]
            first = result.stderr.splitlines()[0]  # no silent exposure: the servers' ports, said first
            assert first.startswith("note: this run's Reverb servers (replay on 0.0.0.0:"), first
            assert "no authentication" in first and "README: Security" in first
            result_file.write_text(result.stdout)
    return out, json.loads(result_file.read_text()), Store(shared / "store")


def test_a_short_online_run_on_catch_learns(online_run):
    out, summary, _ = online_run
    final = summary["final_evaluation"]
    assert summary["env_steps"] >= 1500 and summary["learner_steps"] > 200
    assert final["return_mean"] >= 0.5  # random play scores about -0.7, the expert 1.0
    curve = read_csv(out / "logs" / "eval.csv")
    assert curve[0]["step"] == 0 and curve[-1]["step"] == summary["env_steps"] and len(curve) >= 3
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = read_csv(out / "logs" / "train.csv")
    assert rows[0]["demo_fraction"] > 0.5  # the first rows average in the pre-training updates (all demonstrations)
    online = [row for previous, row in zip(rows, rows[1:]) if previous["step"] >= 200]  # rows after pre-training
    assert online and all(row["demo_fraction"] == pytest.approx(0.25) for row in online)


def test_the_run_reports_the_rate_limiters_counts_and_acting_time(online_run):
    out, summary, _ = online_run
    replay = json.loads((out / "logs" / "replay.json").read_text())
    agent = replay["transitions"]
    assert agent["configured_samples_per_insert"] == 8.0 and agent["inserts"] >= summary["env_steps"] - 9
    assert agent["samples_per_insert"] == pytest.approx(agent["samples"] / agent["inserts"], abs=1e-3)
    periodic = [row for row in read_csv(out / "logs" / "eval.csv") if "acting_seconds" in row]
    assert len(periodic) >= 3 and periodic[0]["acting_seconds"] == 0.0
    assert all(a["acting_seconds"] < b["acting_seconds"] for a, b in zip(periodic, periodic[1:]))


def test_write_back_versions_carry_the_runs_lineage_and_the_manifest_lists_them(online_run):
    out, summary, store = online_run
    manifest = json.loads((out / "run.json").read_text())
    online = manifest["online"]
    assert online["demos"] == "catch_expert@1" and online["demo_ratio"] == 0.25
    assert manifest["dataset"]["ref"] == "catch_expert@1"
    versions = online["write_back"]["versions"]
    compacted = online["write_back"]["actors"][0].get("compacted_versions", [])
    assert compacted and not set(compacted) & set(versions)  # --compact-every 2: in the background, as versions of its own
    assert versions == summary["write_back"]["versions"] and len(versions) >= 2
    assert store.versions("catch_online") == sorted(versions + compacted)
    run_id = online["write_back"]["actors"][0]["run_id"]
    assert run_id.startswith(online["run_id"])
    episodes = 0
    for version in versions:
        lineage = store.manifest(f"catch_online@{version}").lineage
        assert lineage["run_id"] == run_id and lineage["environment"] == "catch"
        assert online["run_id"] in lineage["policy"] and "dqfd" in lineage["policy"]
    episodes = store.manifest("catch_online").num_episodes
    assert episodes * 9 >= 1500  # every episode played was committed (catch episodes are 9 actions)
    assert validate(store, "catch_online") == []
    assert store.manifest("catch_online").num_segments < len(versions)


def test_eval_and_export_work_on_the_online_runs_checkpoint(online_run, tmp_path, capsys):
    from rlstore.cli import main

    out, summary, _ = online_run
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out), "--env", "catch", "--episodes", "5", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["step"] == summary["learner_steps"] and evaluated["dataset"] == "catch_expert@1"
    exported = tmp_path / "policy"
    assert main(["export", "--checkpoint", str(out), "--saved-model", str(exported)]) == 0
    assert (exported / "saved_model.pb").is_file()


def test_ctrl_c_stops_every_process_and_keeps_committed_versions(store, tmp_path):
    out = tmp_path / "run"
    command = _rlstore(store, "run", "dqfd", "--env", "catch", "--demos", "catch_expert@1", "--env-steps", "1000000",
                       "--out", str(out), "--write-back", "catch_interrupted", "--commit-every", "10",
                       "--pretrain-steps", "50", "--eval-every", "0", *SMALL)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(store.versions("catch_interrupted")) < 2 and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[1][-3000:]
            time.sleep(0.2)
        assert len(store.versions("catch_interrupted")) >= 2
        family = psutil.Process(process.pid).children(recursive=True)
        assert len(family) >= 4  # replay, learner, actor, the actor's write-back worker (and log filters)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr[-3000:]
    gone, alive = psutil.wait_procs(family, timeout=5)
    assert alive == []
    manifest = json.loads((out / "run.json").read_text())
    versions = manifest["online"]["write_back"]["versions"]
    assert versions == store.versions("catch_interrupted") and len(versions) >= 2
    assert all(validate(store, f"catch_interrupted@{version}", check_episodes=False) == [] for version in versions)
    assert validate(store, f"catch_interrupted@{versions[-1]}") == []
    assert manifest["sessions"][-1]["end_step"] >= 50  # the learner's final checkpoint


def test_stop_at_return_ends_the_run_at_the_first_evaluation_that_reaches_it(store, tmp_path):
    out = tmp_path / "run"
    # Any return reaches -1 (catch's worst): the evaluation before the first action stops a run whose budget
    # would otherwise take minutes.
    command = _rlstore(store, "run", "dqfd", "--env", "catch", "--demos", "catch_expert@1", "--env-steps", "1000000",
                       "--out", str(out), "--pretrain-steps", "0", "--eval-every", "100", "--stop-at-return", "-1",
                       "--final-eval-episodes", "5", "--json", *SMALL)
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["stopped_at_return"]["step"] == 0 and summary["stopped_at_return"]["return_mean"] >= -1
    assert 0 < summary["env_steps"] < 10000 and summary["final_evaluation"]["episodes"] == 5
    assert "stopping the run" in result.stderr
    session = json.loads((out / "run.json").read_text())["sessions"][-1]
    assert session["stopped_at_return"] == summary["stopped_at_return"]
