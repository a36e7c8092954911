"""R2D3 on real store versions, a real Reverb server and real processes: value rescaling, n-step
targets, burn-in, sequence windows, the recurrent state through Reverb, and one short online run
(replay server, learner and actor processes on loopback) that writes back into the store."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import dm_env
import numpy as np
import pytest
import reverb
import tensorflow as tf

from rlstore.agents.evaluation import evaluate
from rlstore.agents.export import export_saved_model
from rlstore.agents.r2d3 import replay
from rlstore.agents.r2d3.builder import R2D3Builder
from rlstore.agents.r2d3.config import R2D3Config
from rlstore.agents.r2d3.online import core_state_extras
from rlstore.agents.r2d3.networks import previous_actions_and_rewards
from rlstore.agents.r2d3.losses import inverse_value_rescale, n_step_returns, r2d3_loss, value_rescale
from rlstore.agents.logging import read_csv
from rlstore.agents.runs import load_trained
from rlstore.agents.specs import ActionSpec, ArraySpec, DataSpecs
from rlstore import reading
from rlstore.episode import make_episode
from rlstore.replay import SEQUENCES, load_version, sample_dataset
from rlstore.store import Store
from rlstore.writeback import WriteBack
from rlstore.writeback.adder import Adder
from rlstore.writeback.replay import ReplayInserter, layout_rows
from tests.helpers import publish_episodes

SPECS = DataSpecs({"": ArraySpec((1,), "float32")}, ActionSpec((), "int64", 2))
TINY = R2D3Config(batch_size=4, sequence_length=5, period=3, burn_in=3, hidden_sizes=(8,), lstm_size=6, n_step=2,
                  gamma=0.5, normalize_observations=False, min_replay_size=1)
TIMEOUT_MS = 10_000  # a sample the rate limiter holds back fails the test instead of hanging it


def _episode(offset: float, length: int, terminal: bool = True):
    """Observation o_t = offset + t (identifies episode and step), reward 1 per action."""
    return make_episode(observation=(offset + np.arange(length, dtype=np.float32))[:, None],
                        action=np.arange(length) % 2, reward=np.ones(length, np.float32),
                        discount=np.r_[np.ones(length - 2), 0.0 if terminal else 1.0, 0.0].astype(np.float32),
                        is_terminal=terminal)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    store = Store(tmp_path_factory.mktemp("r2d3"))
    publish_episodes(store, "pair", [_episode(0.0, 14), _episode(100.0, 6, terminal=False)])
    return store


def test_value_rescaling_and_its_inverse_are_inverse():
    x = tf.constant(np.r_[-np.logspace(-4, 5, 40), 0.0, np.logspace(-4, 5, 40)], tf.float64)
    np.testing.assert_allclose(inverse_value_rescale(value_rescale(x, 1e-3), 1e-3), x, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(value_rescale(inverse_value_rescale(x, 1e-3), 1e-3), x, rtol=1e-6, atol=1e-9)
    assert float(value_rescale(tf.constant(3.0), 1e-3)) == pytest.approx(1.0 + 3e-3)  # sqrt(4) - 1 + εx


def test_n_step_returns_stop_at_the_end_and_bootstrap_early_at_the_window_end():
    reward = tf.ones([2, 6])
    discount = tf.constant([[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]], tf.float32)  # terminal after step 2; no end
    total, scale, bootstrap = n_step_returns(reward, discount, tf.constant([3, 5]), n_step=3, gamma=0.5)
    # Row 0 ends at step 3 (terminal): from t=1, r1 + .5 r2 and the discount product is 0.
    np.testing.assert_allclose(total[0, :3], [1.75, 1.5, 1.0])
    np.testing.assert_allclose(scale[0, :3], [0.0, 0.0, 0.0])
    # Row 1 runs past the window (end = last step 5): t=3 bootstraps from step 5 after 2 steps.
    np.testing.assert_allclose(total[1, :5], [1.75, 1.75, 1.75, 1.5, 1.0])
    np.testing.assert_allclose(scale[1, :5], [0.125, 0.125, 0.125, 0.25, 0.5])
    np.testing.assert_array_equal(bootstrap[1, :5], [3, 4, 5, 5, 5])


def _batch(store: Store, config: R2D3Config) -> dict:
    return dict(next(iter(reading.sequences(store, "pair", length=config.sequence_length, period=config.period,
                                            burn_in=config.burn_in, batch_size=config.batch_size, seed=0))))


def test_burn_in_steps_carry_no_loss(store):
    config = dataclasses.replace(TINY, prev_action_reward=False)  # else burn-in actions are inputs (tested below)
    networks = R2D3Builder().make_networks(SPECS, config)
    batch = _batch(store, config)
    assert batch["mask"].shape == (4, 8)

    def loss_and_gradients(batch):
        observation = tf.Variable(batch["observation"])
        variables = networks.online.trainable_variables
        with tf.GradientTape() as tape:
            loss = r2d3_loss(networks, {**batch, "observation": observation}, config).loss
        gradients = tape.gradient(loss, [observation, *variables])
        return loss.numpy(), gradients[0].numpy(), [g.numpy() for g in gradients[1:]]

    loss, observation_gradient, gradients = loss_and_gradients(batch)
    assert loss > 0 and np.abs(observation_gradient[:, config.burn_in:]).sum() > 0
    np.testing.assert_array_equal(observation_gradient[:, :config.burn_in], 0.0)  # the state is cut from the gradient
    burn = np.arange(8) < config.burn_in
    changed = {**batch, "reward": np.where(burn, 50.0, batch["reward"]).astype(np.float32),
               "action": np.where(burn, 1 - batch["action"], batch["action"]),
               "discount": np.where(burn, 0.0, batch["discount"]).astype(np.float32)}
    loss_changed, _, gradients_changed = loss_and_gradients(changed)
    assert loss_changed == loss
    for a, b in zip(gradients, gradients_changed):
        np.testing.assert_array_equal(a, b)
    learned = {**batch, "reward": np.where(burn, batch["reward"], 50.0 * batch["reward"]).astype(np.float32)}
    assert loss_and_gradients(learned)[0] != loss  # the same change after the burn-in does count


def test_the_learner_fits_the_sequences_values_on_a_tiny_budget(store):
    config = dataclasses.replace(TINY, learning_rate=3e-3, target_update_period=20)
    tf.random.set_seed(0)  # initial weights (and so the starting TD error) do not depend on the tests run before
    builder = R2D3Builder()
    networks = builder.make_networks(SPECS, config)
    learner = builder.make_learner(networks, builder.make_dataset(store, "pair", SPECS, config, seed=0), SPECS, config)
    before = learner.run(5)["td_abs_mean"]
    learner.run(300)
    after = learner.run(20)["td_abs_mean"]
    assert after < 0.3 * before, (before, after)


@pytest.mark.parametrize("supervised_loss, head_sizes", [("margin", ()), ("cross_entropy", (8,))])
def test_the_supervised_loss_makes_the_demonstrated_actions_greedy_on_a_tiny_budget(store, supervised_loss,
                                                                                    head_sizes):
    """DQfD's J_E (or cross-entropy) on demonstration steps: the TD loss alone leaves the untaken
    action's value where it starts, the supervised term pushes it below the demonstrated one at
    (nearly) every step of both episodes, with a linear head and with R2D2's MLP streams alike.
    Nearly: TF's threads make two processes' runs differ slightly, and a fresh CI run once ended
    300 updates at 0.97 accuracy (from 0.5); 600 updates, and 0.95 as the bar."""
    config = dataclasses.replace(TINY, learning_rate=3e-3, supervised_weight=1.0, supervised_loss=supervised_loss,
                                 head_sizes=head_sizes)
    tf.random.set_seed(0)
    builder = R2D3Builder()
    networks = builder.make_networks(SPECS, config)
    learner = builder.make_learner(networks, builder.make_dataset(store, "pair", SPECS, config, seed=0), SPECS, config)
    before = learner.run(5)
    learner.run(600)
    after = learner.run(20)
    assert after["demo_accuracy"] >= 0.95 and after["margin_loss"] < 0.2 * before["margin_loss"], (before, after)
    unweighted_config = dataclasses.replace(config, supervised_weight=0.0)
    unweighted = r2d3_loss(networks, next(iter(builder.make_dataset(store, "pair", SPECS, TINY, seed=0))),
                           unweighted_config)
    assert unweighted.metrics["margin_loss"] > 0  # measured, but in the loss only with a weight


def test_the_dueling_streams_are_linear_by_default_and_mlps_with_head_sizes():
    """Linear streams keep the variable names checkpoints of earlier runs hold; `head_sizes` gives
    each stream hidden layers (R2D2's head), so Q can combine what is remembered with what is seen."""
    def head_variables(config: R2D3Config) -> list[str]:
        network = R2D3Builder().make_networks(SPECS, config).online
        return sorted(v.name for v in network.trainable_variables if "q_head" in v.name)

    assert head_variables(TINY) == ["online/q_head/advantage/b:0", "online/q_head/advantage/w:0",
                                    "online/q_head/value/b:0", "online/q_head/value/w:0"]
    widths = {v.name: v.shape.as_list() for v in R2D3Builder().make_networks(
        SPECS, dataclasses.replace(TINY, head_sizes=(8,))).online.trainable_variables if "q_head" in v.name}
    assert widths["online/q_head/advantage/linear_0/w:0"] == [6, 8]
    assert widths["online/q_head/advantage/linear_1/w:0"] == [8, 2]
    assert widths["online/q_head/value/linear_1/w:0"] == [8, 1]
    with pytest.raises(ValueError, match="supervised_loss"):
        dataclasses.replace(TINY, supervised_loss="hinge")


def test_symbolic_images_are_one_hot_encoded_per_channel():
    """MiniGrid's key (5) and ball (6) codes as two distinct planes, not as 5/255 and 6/255."""
    from rlstore.agents.networks import ObservationEncoder

    specs = {"image": ArraySpec((7, 7, 3), "uint8", True)}
    encoder = ObservationEncoder(specs, image_codes=11)
    image = np.zeros((1, 7, 7, 3), np.uint8)
    key, ball = image.copy(), image.copy()
    key[0, 3, 3, 0], ball[0, 3, 3, 0] = 5, 6
    features = [encoder({"image": tf.constant(x)}).numpy() for x in (image, key, ball)]
    kernels = [v.shape for v in encoder.trainable_variables if len(v.shape) == 4]
    assert (3, 3, 3 * 11, 32) in kernels  # the first conv reads 33 planes
    assert not np.allclose(features[1], features[2]) and not np.allclose(features[0], features[1])


def test_the_lstm_reads_the_previous_action_and_reward_zeroed_at_episode_starts():
    network = R2D3Builder().make_networks(SPECS, TINY).online
    rng = np.random.default_rng(0)
    observation = tf.constant(rng.normal(size=(1, 6, 1)), tf.float32)
    action = np.array([[0, 1, 1, 0, 1, 0]])
    reward = np.array([[0.0, 1.0, 0.0, 0.0, 2.0, 0.0]], np.float32)
    is_first = np.array([[True, False, False, True, False, False]])  # a new episode at step 3

    def q_values(action, reward):
        prev_action, prev_reward = previous_actions_and_rewards(action, reward, is_first)
        return network.unroll(observation, prev_action, prev_reward, network.initial_state(1))[0].numpy()[0]

    base = q_values(action, reward)
    for changed in ({"action": np.where(np.arange(6) == 1, 0, action)},
                    {"reward": np.where(np.arange(6) == 1, 5.0, reward).astype(np.float32)}):
        q = q_values(changed.get("action", action), changed.get("reward", reward))
        np.testing.assert_array_equal(q[:2], base[:2])  # a_1 and r_1 are inputs from step 2 on
        assert not np.allclose(q[2], base[2])
    prev_action, prev_reward = previous_actions_and_rewards(action, reward, is_first)
    np.testing.assert_array_equal(prev_action, [[0, 0, 1, 0, 0, 1]])
    np.testing.assert_array_equal(prev_reward, [[0, 0, 1, 0, 0, 2]])
    # Step 3 starts an episode: a_2 and r_2 are no input at all (an actor starts from zeros too).
    q = q_values(np.where(np.arange(6) == 2, 0, action), np.where(np.arange(6) == 2, 9.0, reward).astype(np.float32))
    np.testing.assert_array_equal(q, base)


def test_the_demo_table_holds_every_demonstration_before_the_first_sample(store):
    count = replay.demo_window_count(store, "pair", TINY)
    server = reverb.Server(replay.tables(TINY, SPECS, store.manifest("pair").schema, count))
    address = f"localhost:{server.port}"
    try:
        info = reverb.Client(address).server_info()[replay.DEMO_TABLE]
        assert count > 1 and info.rate_limiter_info.min_size_to_sample == count
        with pytest.raises(StopIteration):  # the rate limiter held the sample back: the dataset ends
            next(iter(sample_dataset(address, replay.DEMO_TABLE, 1, rate_limiter_timeout_ms=200)))
        assert load_version(address, store, "pair", replay.layout(TINY)) == {replay.DEMO_TABLE: count}
        assert next(iter(sample_dataset(address, replay.DEMO_TABLE, 1, rate_limiter_timeout_ms=TIMEOUT_MS)))
    finally:
        server.stop()


def _window_steps(rows: dict, index: int) -> tuple[np.ndarray, np.ndarray]:
    mask = rows["mask"][index].astype(bool)
    return rows["observation"][index][:, 0], mask


def test_sequences_never_cross_an_episode_boundary_and_actor_windows_match(store):
    rows = next(iter(reading.sequences(store, "pair", length=5, period=3, burn_in=3, batch_size=100, shuffle=False,
                                       repeat=False)))
    rows = {key: value.numpy() for key, value in rows.items()}
    starts = []
    for index in range(len(rows["mask"])):
        observation, mask = _window_steps(rows, index)
        assert mask[0] and (np.diff(mask.astype(int)) <= 0).all()  # real steps first, then padding
        real = observation[mask]
        assert len(np.unique(real // 100)) == 1 and (np.diff(real) == 1).all()  # one episode, consecutive steps
        assert (observation[~mask] == 0).all() and not rows["is_first"][index][~mask].any()
        assert rows["is_last"][index][mask].sum() == (real[-1] % 100 in (13, 5))  # the end shows only at the end
        starts.append(real[0])
    assert starts == [0, 3, 6, 100]  # every `period` steps until a window reaches the last step
    # The actor side makes the same windows from the same episode; each starts from the state
    # recorded with its first step (step metadata core_state/<i>, as the adder records it).
    layout = replay.layout(TINY, is_demo=False)
    steps = _episode(0.0, 14)["steps"]
    steps["core_state"] = {"0": np.repeat(np.arange(14, dtype=np.float32)[:, None], 6, axis=1)}
    steps["core_state"]["1"] = -steps["core_state"]["0"]
    actor_rows = layout_rows(steps, layout, SEQUENCES)
    np.testing.assert_array_equal(actor_rows["observation"], rows["observation"][:3])
    np.testing.assert_array_equal(actor_rows["mask"], rows["mask"][:3])
    np.testing.assert_array_equal(actor_rows["core_state"][0][:, 0], [0, 3, 6])
    np.testing.assert_array_equal(actor_rows["core_state"][1][:, 0], [0, -3, -6])


def _play(adder: Adder, episode: dict, states: list) -> None:
    """Feeds an episode's dm_env stream to the adder, with states[t] as step t's extras."""
    steps = episode["steps"]
    adder.observe_first(dm_env.restart(steps["observation"][0]))
    for t in range(len(steps["reward"]) - 1):
        last = t == len(steps["reward"]) - 2
        step_type = dm_env.StepType.LAST if last else dm_env.StepType.MID
        adder.observe(steps["action"][t], dm_env.TimeStep(step_type, steps["reward"][t], steps["discount"][t],
                                                          steps["observation"][t + 1]),
                      extras=core_state_extras(states[t]))


def _assert_items_start_from(samples, states: list, is_demo: bool) -> None:
    for observation, h, c, demo in zip(samples.data["observation"].numpy(), *samples.data["core_state"],
                                       samples.data["is_demo"].numpy()):
        start = int(observation[0, 0])
        np.testing.assert_array_equal(h, states[start][0][0])
        np.testing.assert_array_equal(c, states[start][1][0])
        assert demo == is_demo


def test_the_adder_carries_the_lstm_state_to_reverb_and_the_store_which_refills_it(store, tmp_path):
    """One recording: the adder's sequences reach the agent table with the state of their first
    step, the written-back episode keeps the states as step metadata, and loading that version
    into a fresh table gives the very same states back."""
    layout = replay.layout(TINY)
    server = reverb.Server(replay.tables(TINY, SPECS, store.manifest("pair").schema))
    address = f"localhost:{server.port}"
    try:
        load_version(address, store, "pair", layout)
        rng = np.random.default_rng(0)
        states = [tuple(rng.normal(size=(1, 6)).astype(np.float32) for _ in range(2)) for _ in range(14)]
        written = Store(tmp_path)
        writer = WriteBack(written, "agent", environment="test", policy="r2d3 actor", commit_every=1)
        adder = Adder(ReplayInserter(address, replay.layout(TINY, is_demo=False), into={SEQUENCES: replay.AGENT_TABLE}),
                      writer)
        _play(adder, _episode(0.0, 14), states)
        adder.close()
        assert reverb.Client(address).server_info()[replay.AGENT_TABLE].current_size == 3
        samples = next(iter(sample_dataset(address, replay.AGENT_TABLE, 30, rate_limiter_timeout_ms=TIMEOUT_MS)))
        _assert_items_start_from(samples, states, is_demo=False)
        demos = next(iter(sample_dataset(address, replay.DEMO_TABLE, 10, rate_limiter_timeout_ms=TIMEOUT_MS)))
        assert demos.data["is_demo"].numpy().all()
        assert not any(part.numpy().any() for part in demos.data["core_state"])  # logged data starts from zeros
    finally:
        server.stop()

    (stored,) = written.load("agent")
    stored_steps = next(iter(stored["steps"].batch(100)))
    for part in range(2):
        np.testing.assert_array_equal(stored_steps["core_state"][str(part)].numpy()[:-1],
                                      np.concatenate([state[part] for state in states[:13]]))
    refill = reverb.Server(replay.tables(TINY, SPECS, written.manifest("agent").schema))
    try:
        address = f"localhost:{refill.port}"
        assert load_version(address, written, "agent", layout) == {replay.DEMO_TABLE: 3}
        samples = next(iter(sample_dataset(address, replay.DEMO_TABLE, 30, rate_limiter_timeout_ms=TIMEOUT_MS)))
        _assert_items_start_from(samples, states, is_demo=True)
    finally:
        refill.stop()


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in command:
                found.append(f"{entry.name}: {command}")
    return found


PRETRAIN_STEPS = 30


@pytest.fixture(scope="module")
def online_run(tmp_path_factory):
    """One short online run, shared: replay server, learner and one actor as processes on loopback."""
    from rlstore.agents.online.run import OnlineOptions, run
    from rlstore.datasets.demonstrations import ingest_expert_demos

    root = tmp_path_factory.mktemp("r2d3_online")
    store = Store(root / "store")
    ingest_expert_demos(store, "tmaze_demos", "tmaze:length=3", 4, root / "logs")
    out = root / "run"
    config = {"batch_size": 8, "sequence_length": 10, "period": 5, "burn_in": 2, "lstm_size": 8,
              "hidden_sizes": (8,), "demo_ratio": 0.25, "min_replay_size": 4, "samples_per_insert": 4.0,
              "pretrain_steps": PRETRAIN_STEPS}
    options = OnlineOptions(env="tmaze:length=3", env_steps=300, out=out, demos="tmaze_demos",
                            write_back="tmaze_online", commit_every=10, eval_episodes=2, final_eval_episodes=4)
    summary = run("r2d3", store, options, config)
    return store, out, summary


def test_three_process_run_completes_writes_back_and_leaves_nothing_running(online_run):
    store, out, summary = online_run
    assert summary["env_steps"] >= 300 and summary["learner_steps"] > 0
    assert summary["write_back"]["versions"] and store.manifest("tmaze_online").num_steps >= 300
    assert _processes_mentioning(str(out)) == []
    trained = load_trained(out)
    assert trained.manifest["agent"] == "r2d3" and trained.step == summary["learner_steps"]


def test_actors_start_after_pretraining_on_demonstrations(online_run):
    """The memory preset (tmaze) adds the margin loss; the actors wait for `pretrain_steps`
    updates on demonstrations alone: every evaluation played weights from after them."""
    _, out, summary = online_run
    manifest = load_trained(out).manifest
    assert manifest["online"]["preset"] == "memory" and manifest["config"]["supervised_weight"] == 1.0
    rows = read_csv(out / "logs" / "eval.csv")
    assert rows and min(int(row["learner_step"]) for row in rows) >= PRETRAIN_STEPS
    assert summary["learner_steps"] > PRETRAIN_STEPS


def test_online_checkpoint_evaluates_and_exports_with_its_state_carried(online_run, tmp_path):
    _, out, _ = online_run
    trained = load_trained(out)
    result = evaluate(trained.make_actor, "tmaze:length=3", 3, specs=trained.specs)
    assert result["episodes"] == 3
    exported = tf.saved_model.load(str(export_saved_model(trained, tmp_path / "policy")))
    actor = trained.make_actor(None)
    from rlstore.envs import make_environment

    env = make_environment("tmaze:length=3", seed=0)
    for _ in range(3):
        timestep, state = env.reset(), exported.initial_state(1)
        prev_action, prev_reward = tf.zeros([1], tf.int32), tf.zeros([1])
        while not timestep.last():
            action, state = exported(timestep.observation[None], prev_action, prev_reward, state)
            expected = actor(timestep)
            assert int(action[0]) == int(expected)
            timestep = env.step(expected)
            prev_action, prev_reward = tf.constant([int(expected)]), tf.constant([timestep.reward], tf.float32)


def test_batches_mix_demonstrations_with_text_observations_and_actor_windows_without(tmp_path):
    """MiniGrid's episodes keep the mission text (the store holds it), the networks read no text:
    an actor's windows go into the agent table without it, demonstration rows leave it out when
    batches mix both tables, and the images are read by the conv torso."""
    from rlstore.agents.online.context import specs_from_environment
    from rlstore.envs import make_environment, make_policy
    from rlstore.rollout import run_episodes

    spec = "gym:MiniGrid-MemoryS7-v0"
    env = make_environment(spec, seed=0)
    specs = specs_from_environment(env)
    assert specs.observation["image"].image and "mission" not in specs.observation
    demos = Store(tmp_path / "store")
    publish_episodes(demos, "demos", list(run_episodes(env, make_policy("expert", spec, env), 2)))
    config = dataclasses.replace(TINY, demo_ratio=0.5, burn_in=0, image_codes=11, supervised_weight=1.0)
    server = reverb.Server(replay.tables(config, specs, demos.manifest("demos").schema,
                                        replay.demo_window_count(demos, "demos", config)))
    address = f"localhost:{server.port}"
    try:
        load_version(address, demos, "demos", replay.layout(config))
        adder = Adder(ReplayInserter(address, replay.layout(config, is_demo=False), into={SEQUENCES: replay.AGENT_TABLE}))
        timestep, expert, state = env.reset(), make_policy("expert", spec, env), (np.zeros((1, 6), np.float32),) * 2
        adder.observe_first(timestep)  # the env's observation as it is, as actors give it
        while not timestep.last():
            action = expert(timestep)
            timestep = env.step(action)
            adder.observe(action, timestep, extras=core_state_extras(state))
        adder.close()
        batch = next(iter(replay.replay_batches(address, config, with_demos=True, seed=0, timeout_ms=TIMEOUT_MS)))
        assert set(batch["observation"]) == {"image", "direction"} and 0 < float(np.mean(batch["is_demo"])) < 1
        networks = R2D3Builder().make_networks(specs, config)
        assert np.isfinite(r2d3_loss(networks, batch, config).loss.numpy())
    finally:
        server.stop()
