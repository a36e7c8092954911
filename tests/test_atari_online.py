"""Online agents on Atari (`--env atari:<Game>`): real ALE with Dopamine's preprocessing, frame
stacks built by the store's stacking rule (`rlstore.frames.push`), actors that write back one
frame per step (the layout of a `dqn_replay` ingest) and insert Reverb items (DQfD's
transitions, R2D3's sequences) that share frames. End to end: `rlstore run dqfd` and an R2D3
run on real ALE Breakout, real Reverb, real store, with a `dqn_replay` ingest of
Dopamine-written checkpoints as demonstrations; the stacks read back from the write-back
versions equal the observations the environment gave the actor."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import dm_env
import numpy as np
import pytest

from rlstore import frames, seeds
from rlstore.envs import EnvSpecError, make_environment, parse_spec, without_step_cost
from rlstore.errors import BadInputError
from rlstore.writeback.columns import StepRecorder

GAME = "atari:Breakout?max_steps=40"


def test_atari_spec_forms():
    spec = parse_spec("atari:Pong")
    assert (spec.kind, spec.game, spec.frame_stack, dict(spec.params)) == \
        ("atari", "Pong", 4, {"stack": 4, "sticky": 1, "max_steps": 27_000})
    spec = parse_spec("atari:Breakout?stack=2&sticky=0&max_steps=100&step_ms=5")
    assert (spec.frame_stack, spec.params["sticky"], spec.params["max_steps"], spec.step_ms) == (2, 0, 100, 5)
    assert without_step_cost("atari:Breakout?stack=2&step_ms=5") == "atari:Breakout?stack=2"
    assert parse_spec("gym:CartPole-v1").frame_stack == 1 and parse_spec("catch").frame_stack == 1
    for bad, problem in [("atari:", "ALE game name"), ("atari:Pong?sticky=2", "sticky must be 0 or 1"),
                         ("atari:Pong?skip=3", "unknown parameter"), ("atari:Pong?stack=0", "stack must be >= 1")]:
        with pytest.raises(EnvSpecError, match=problem):
            parse_spec(bad)
    with pytest.raises(EnvSpecError, match="cannot make Atari game 'NoSuchGame'"):
        make_environment("atari:NoSuchGame")


def test_push_is_the_readers_stacking_rule_step_by_step():
    episode = np.random.default_rng(0).integers(0, 255, (7, 5, 6), dtype=np.uint8)
    state, pushed = None, []
    for frame in episode:
        state = frames.push(state, frame, 3)
        pushed.append(state)
    assert np.array_equal(np.stack(pushed), frames.stack(episode, np.zeros(7, np.int64), np.arange(7), 3))


def test_the_atari_env_gives_dopamine_stacks():
    env = make_environment(GAME, seed=1)
    assert env.observation_spec().shape == (84, 84, 4) and env.observation_spec().dtype == np.uint8
    assert env.action_spec().num_values == 4 and env.action_spec().dtype == np.int32  # Dopamine's int32 actions
    timestep, seen = env.reset(), []
    rng = np.random.default_rng(0)
    while True:
        seen.append(timestep.observation)
        if timestep.last():
            break
        timestep = env.step(rng.integers(4))
    assert len(seen) == 41 and timestep.discount == 1.0  # cut by max_steps: a truncation
    single = frames.unstack(np.stack(seen), 4)  # zero-padded first stack, each the previous shifted
    assert single.shape == (41, 84, 84) and single[1:].any()
    env.close()


def test_a_stack_that_breaks_the_rule_stops_the_recorder_at_its_step():
    recorder = StepRecorder("run", frame_stack=2)
    first = frames.push(None, np.full((3, 3), 7, np.uint8), 2)
    recorder.observe_first(dm_env.restart(first))
    recorder.observe(0, dm_env.transition(0.0, frames.push(first, np.ones((3, 3), np.uint8), 2)))
    with pytest.raises(BadInputError, match="episode run:0, step 2, field 'observation'.*shifted by one frame"):
        recorder.observe(0, dm_env.transition(0.0, first))
    recorder = StepRecorder("run", frame_stack=2)
    with pytest.raises(BadInputError, match="step 0, .*first observation must stack 1 all-zero"):
        recorder.observe_first(dm_env.restart(np.ones((3, 3, 2), np.uint8)))


def test_actor_inserts_share_frames_and_equal_the_readers_items(dopamine_store):
    """The actors' insert path on the Dopamine-written frames: the items equal the readers' rows."""
    import reverb

    from rlstore.agents.dqfd import replay
    from rlstore.agents.dqfd.config import DQfDConfig
    from rlstore.agents.online.context import actor_schema, specs_from_environment
    from rlstore.numpy import episodes
    from rlstore.replay import TableOptions, sample_dataset
    from rlstore.replay.tables import make_table, transition_signature
    from rlstore.writeback.replay import ReplayInserter
    from tests.test_image_replay import _key, reader_items

    config = DQfDConfig(n_step=3)
    specs = specs_from_environment(make_environment(GAME))
    signature = transition_signature(actor_schema(specs, frame_stack=4), one_step=True)  # DQfD's online tables'
    table = make_table(replay.REPLAY_TABLE, TableOptions(max_size=10_000), signature, preload=0)
    server = reverb.Server([table])
    try:
        address = f"localhost:{server.port}"
        inserter = ReplayInserter(address, replay.layout(config), frame_stack=4)
        stored = [episode["steps"] for episode in episodes(dopamine_store, "atari", shuffle=False, repeat=False)]
        inserter.add(stored[:2])
        inserter.add(stored[2:])
        inserter.close()
        manifest = dopamine_store.manifest("atari")
        assert inserter.inserted == {"transitions": manifest.num_steps - manifest.num_episodes}
        want = reader_items(dopamine_store, "atari")
        sample = next(iter(sample_dataset(address, replay.REPLAY_TABLE, 256)))
        data = {field: value.numpy() for field, value in sample.data.items()}
        assert data["observation"].shape == (256, 84, 84, 4)
        assert all(_key(data, index) in want for index in range(256))
    finally:
        server.stop()


def _stacks_by_episode(store, ref: str) -> list[dict[str, np.ndarray]]:
    from rlstore.reading import steps

    rows = {key: np.concatenate(parts) for key, parts in _columns(
        steps(store, ref, batch_size=512, shuffle=False, repeat=False).as_numpy_iterator()).items()}
    starts = np.flatnonzero(rows["is_first"]).tolist() + [len(rows["is_first"])]
    return [{key: value[a:b] for key, value in rows.items()} for a, b in zip(starts, starts[1:])]


def _assert_the_env_gave_these_stacks(stored: list[dict[str, np.ndarray]], game: str, seed: int) -> None:
    """The actor's environment, replayed with its seed and the stored actions, shows the stored
    stacks (`_stacks_by_episode`) step by step, and ends each episode where and as it was stored."""
    env = make_environment(game, seed=seed)
    for episode in stored:
        timestep = env.reset()
        for t in range(len(episode["action"])):
            assert np.array_equal(episode["observation"][t], timestep.observation), t
            if timestep.last():
                break
            timestep = env.step(episode["action"][t])
        assert timestep.last() and t == len(episode["action"]) - 1
        assert bool(episode["is_terminal"][-1]) == (timestep.discount == 0.0)
    env.close()


def _columns(batches) -> dict[str, list[np.ndarray]]:
    columns: dict[str, list[np.ndarray]] = {}
    for batch in batches:
        for key in ("observation", "action", "is_first", "is_last", "is_terminal"):
            columns.setdefault(key, []).append(batch[key])
    return columns


def test_dqfd_runs_online_on_atari_and_writes_back_frames_that_rebuild_what_the_actor_saw(dopamine_store, tmp_path):
    from rlstore.store import Store
    from rlstore.validation import validate

    root = tmp_path / "store"
    shutil.copytree(dopamine_store.root, root)  # demonstrations: the dqn_replay ingest
    out = tmp_path / "run"
    command = [sys.executable, "-m", "rlstore", "--store", str(root), "run", "dqfd", "--env", GAME,
               "--demos", "atari@1", "--env-steps", "100", "--out", str(out), "--write-back", "atari_online",
               "--commit-every", "2", "--pretrain-steps", "5", "--eval-every", "0", "--final-eval-episodes", "1",
               "--batch-size", "16", "--hidden-sizes", "16", "--min-replay-size", "20", "--samples-per-insert", "1",
               "--n-step", "3", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["env_steps"] >= 100 and len(summary["write_back"]["versions"]) >= 2
    counts = json.loads((out / "logs" / "replay.json").read_text())
    assert counts["transitions"]["inserts"] == summary["env_steps"]  # every step's transition, frames shared
    assert counts["demonstrations"]["size"] > 0

    store = Store(root)
    assert validate(store, "atari_online") == []
    observation = store.manifest("atari_online").schema.steps["observation"]
    assert (observation.shape, observation.stack) == ((84, 84), 4)  # one frame per step, as dqn_replay stores them
    assert {s["shard_format"] for s in store.manifest("atari_online").segments} == {"parquet"}  # and where
    stored = _stacks_by_episode(store, "atari_online")
    assert len(stored) == store.manifest("atari_online").num_episodes >= 3
    _assert_the_env_gave_these_stacks(stored, GAME, seeds.acting(0, 0))


def test_r2d3_actor_sequences_share_frames_and_are_the_stacks_the_actor_saw():
    """R2D3's actor path on real ALE: the adder appends each episode's frames once and its
    sequences reference them; sampled windows [span, 84, 84, 4] are, byte for byte, the stacks
    the environment gave (zero frames before the first step, zero stacks past the end, mask 0),
    and each starts from the LSTM state recorded with its first step."""
    import reverb
    import tensorflow as tf

    from rlstore.agents.online.context import specs_from_environment
    from rlstore.agents.r2d3 import replay
    from rlstore.agents.r2d3.config import R2D3Config
    from rlstore.agents.r2d3.online import core_state_extras
    from rlstore.replay import sample_dataset
    from rlstore.writeback.adder import Adder

    game, span = "atari:Breakout?max_steps=20", 12
    config = R2D3Config(batch_size=6, sequence_length=10, period=5, burn_in=2, lstm_size=3, min_replay_size=1,
                        samples_per_insert=4.0)
    env = make_environment(game, seed=5)
    server = reverb.Server(replay.tables(config, specs_from_environment(env), None, frame_stack=4))
    try:
        address = f"localhost:{server.port}"
        adder = Adder(replay.agent_inserter(address, config, frame_stack=4), frame_stack=4)
        rng, seen, actions = np.random.default_rng(0), [], []
        for episode in range(2):  # the state recorded with step t of episode e is all 1000 e + t
            timestep = env.reset()
            adder.observe_first(timestep)
            seen.append([timestep.observation])
            actions.append([])
            while not timestep.last():
                state = [np.full((1, 3), 1000 * episode + len(seen[-1]) - 1, np.float32)] * 2
                actions[-1].append(np.int32(rng.integers(4)))  # the env's action dtype, as actors give it
                timestep = env.step(actions[-1][-1])
                adder.observe(actions[-1][-1], timestep, extras=core_state_extras(state))
                seen[-1].append(timestep.observation)
        adder.close()
        env.close()
        assert [len(observations) for observations in seen] == [21, 21]
        table = reverb.Client(address).server_info()[replay.AGENT_TABLE]
        assert table.current_size == 6  # windows start at steps 0, 5 and 10 of each episode
        assert [(spec.shape, spec.dtype) for spec in table.signature["observation"]] == [((span, 84, 84), tf.uint8)] * 4
        drawn = set()
        for sample in sample_dataset(address, replay.AGENT_TABLE, 6, rate_limiter_timeout_ms=10_000).take(10):
            data = {field: np.asarray(value) for field, value in sample.data.items()}
            assert data["observation"].shape == (6, span, 84, 84, 4)
            for index in range(6):
                marker = int(data["core_state"][0][index, 0])
                episode, start = divmod(marker, 1000)
                real = seen[episode][start:start + span]
                want = np.zeros((span, 84, 84, 4), np.uint8)
                want[:len(real)] = real
                assert np.array_equal(data["observation"][index], want), (episode, start)
                np.testing.assert_array_equal(data["mask"][index], np.arange(span) < len(real))
                taken = actions[episode][start:start + span]
                np.testing.assert_array_equal(data["action"][index][:len(taken)], taken)
                assert not data["is_demo"][index] and (data["core_state"][1][index] == marker).all()
                drawn.add(marker)
    finally:
        server.stop()
    assert drawn == {0, 5, 10, 1000, 1005, 1010}


def test_r2d3_runs_online_on_atari_and_writes_back_frames_that_rebuild_what_the_actor_saw(dopamine_store, tmp_path):
    """An R2D3 run on real ALE Breakout with the `dqn_replay` ingest as demonstrations (replay,
    learner and actor processes): the learner trains on batches mixing both tables' stacked
    sequences, every episode's windows reach the agent table, and the write-back stores one
    frame per step (with the LSTM states) from which the readers rebuild the env's stacks."""
    from rlstore import reading
    from rlstore.agents.online.run import OnlineOptions, run
    from rlstore.agents.r2d3 import replay
    from rlstore.agents.r2d3.config import R2D3Config
    from rlstore.store import Store

    root = tmp_path / "store"
    shutil.copytree(dopamine_store.root, root)
    store, out = Store(root), tmp_path / "run"
    config = {"sequence_length": 10, "period": 5, "burn_in": 2, "batch_size": 4, "hidden_sizes": (16,),
              "lstm_size": 8, "demo_ratio": 0.25, "pretrain_steps": 0, "min_replay_size": 2, "samples_per_insert": 1.0}
    options = OnlineOptions(env=GAME, env_steps=60, out=out, demos="atari@1", write_back="atari_r2d3",
                            commit_every=1, eval_every_env_steps=0, final_eval_episodes=1)
    summary = run("r2d3", store, options, config)
    assert summary["env_steps"] >= 60 and summary["learner_steps"] > 0
    schema = store.manifest("atari_r2d3").schema
    assert (schema.steps["observation"].shape, schema.steps["observation"].stack) == ((84, 84), 4)
    assert {"core_state/0", "core_state/1"} <= set(schema.steps)

    def window_count(ref: str) -> int:  # the readers' windows (stacks built), counted
        return sum(len(rows["mask"]) for rows in reading.sequences(
            store, ref, length=10, period=5, burn_in=2, batch_size=64, shuffle=False, repeat=False))

    counts = json.loads((out / "logs" / "replay.json").read_text())
    assert counts["agent_sequences"]["inserts"] == window_count("atari_r2d3")
    # The demonstration table's MinSize (counted from the episodes' flags) is every window loaded.
    demo_windows = window_count("atari@1")
    assert counts["sequences"]["size"] == demo_windows
    assert replay.demo_window_count(store, "atari@1", R2D3Config(**config)) == demo_windows
    stored = _stacks_by_episode(store, "atari_r2d3")
    assert len(stored) == store.manifest("atari_r2d3").num_episodes >= 2
    _assert_the_env_gave_these_stacks(stored, GAME, seeds.acting(0, 0))


def test_record_on_atari_stores_each_frame_once_and_reads_back_what_the_env_gave(tmp_path, capsys):
    """`rlstore record --env atari:...` writes what the online actors write: one frame per step,
    the stack size in the schema, parquet shards; the readers rebuild the env's stacks, and stock
    TFDS reads the single frames."""
    import tensorflow_datasets as tfds

    from rlstore.cli import main
    from rlstore.store import Store
    from rlstore.validation import validate

    game = "atari:Pong?max_steps=100"
    code = main(["--store", str(tmp_path), "record", "--env", game, "--policy", "random", "--episodes", "3",
                 "--dataset", "pong", "--seed", "3", "--commit-every", "2"])
    assert code == 0, capsys.readouterr().err
    assert "recorded 3 episodes (303 steps) into pong: versions 1..2" in capsys.readouterr().out
    store = Store(tmp_path)
    manifest = store.manifest("pong")
    observation = manifest.schema.steps["observation"]
    assert (observation.shape, observation.stack) == ((84, 84), 4)
    assert {s["shard_format"] for s in manifest.segments} == {"parquet"}
    assert validate(store, "pong") == []

    stored = _stacks_by_episode(store, "pong")
    assert [len(episode["action"]) for episode in stored] == [101] * 3
    _assert_the_env_gave_these_stacks(stored, game, seed=3)
    assert not any(episode["is_terminal"][-1] for episode in stored)  # cut by max_steps: truncations

    builder = tfds.builder_from_directories(store.segment_dirs("pong"))
    single = [episode["steps"].batch(1000).get_single_element()["observation"].numpy()
              for episode in builder.as_dataset(split="train")]
    assert sorted(s.shape for s in single) == [(101, 84, 84)] * 3
    rebuilt = [frames.stack(s, np.zeros(len(s), np.int64), np.arange(len(s)), 4) for s in single]
    expected = sorted(e["observation"].tobytes() for e in stored)
    assert sorted(r.tobytes() for r in rebuilt) == expected


@pytest.mark.parametrize("quiet", [True, False])
def test_ale_prints_its_banner_only_where_no_entry_point_asked_for_quiet(quiet):
    """ALE prints its version banner once per process; the CLI, the online run's processes and
    the benchmarks call `silence()`, and then it stays out of their logs."""
    script = ("from rlstore.quiet import silence; silence()\n" if quiet else "") + (
        "from rlstore.envs.atari import make_ale\nmake_ale('Pong', sticky=False, frameskip=4).reset(seed=0)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert ("A.L.E: Arcade Learning Environment" in done.stderr) is not quiet, done.stderr
