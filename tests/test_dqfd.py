"""DQfD's offline core on real store versions: the margin loss, the 1-step/n-step double-Q targets
(terminal vs time-limit cut), the target-network sync, and `train dqfd` → eval → export on catch."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from rlstore.agents.dqfd.builder import DQfDBuilder
from rlstore.agents.dqfd.config import DQfDConfig
from rlstore.agents.dqfd.data import demonstration_batches
from rlstore.agents.dqfd.losses import double_q_target, dqfd_loss, margin_loss
from rlstore.agents.evaluation import evaluate
from rlstore.agents.runs import load_trained
from rlstore.agents.specs import ActionSpec, ArraySpec, DataSpecs
from rlstore.envs import make_environment, make_expert, make_policy
from rlstore.episode import make_episode
from rlstore.rollout import run_episodes
from rlstore.store import Store
from tests.helpers import publish_episodes

TINY = DQfDConfig(batch_size=6, hidden_sizes=(8,), gamma=0.5, n_step=10, normalize_observations=False)
SPECS = DataSpecs({"": ArraySpec((1,), "float32")}, ActionSpec((), "int64", 2))


def _episode(offset: float, terminal: bool):
    """3 actions, reward 1 each; observation o_t = offset + t identifies the row."""
    return make_episode(observation=(offset + np.arange(4, dtype=np.float32))[:, None],
                        action=np.array([0, 1, 0, 0]), reward=np.ones(4, np.float32),
                        discount=np.array([1, 1, 0 if terminal else 1, 0], np.float32), is_terminal=terminal)


@pytest.fixture(scope="module")
def two_episodes(tmp_path_factory) -> Store:
    """One episode that really ends (observations 0..3) and one cut by a time limit (10..13)."""
    store = Store(tmp_path_factory.mktemp("dqfd_tiny"))
    publish_episodes(store, "pair", [_episode(0.0, terminal=True), _episode(10.0, terminal=False)])
    return store


def test_margin_loss_is_zero_only_when_the_demo_action_leads_by_the_margin():
    q_values = tf.constant([[2.0, 1.2, 0.5],    # leads by exactly 0.8
                            [2.0, 0.0, -3.0],   # leads by more
                            [2.0, 1.3, 0.5],    # leads by only 0.7
                            [1.0, 3.0, 0.0]])   # another action is better
    loss = margin_loss(q_values, tf.constant([0, 0, 0, 0]), margin=0.8).numpy()
    np.testing.assert_allclose(loss, [0.0, 0.0, 0.1, 2.8], atol=1e-6)


def test_margin_loss_counts_demonstration_rows_only(two_episodes):
    networks = DQfDBuilder().make_networks(SPECS, TINY)
    batch = dict(next(iter(demonstration_batches(two_episodes, "pair", n_step=10, gamma=0.5, batch_size=6, seed=0))))
    q_values = networks.online(batch["observation"])
    per_row = margin_loss(q_values, batch["action"], TINY.margin).numpy()
    demo = np.array([True, False] * 3)
    batch["is_demo"] = tf.constant(demo)
    metrics = dqfd_loss(networks, batch, TINY).metrics
    assert per_row[~demo].sum() > 0
    np.testing.assert_allclose(metrics["margin_loss"].numpy(), per_row[demo].mean(), rtol=1e-5)


def test_n_step_targets_stop_at_a_terminal_and_bootstrap_through_a_time_limit(two_episodes):
    # The reader repeats and shuffles, so a batch of 60 holds every row (some twice, identically).
    batch = next(iter(demonstration_batches(two_episodes, "pair", n_step=10, gamma=0.5, batch_size=60, seed=0)))
    assert batch["is_demo"].numpy().all() and (batch["weight"].numpy() == 1).all()
    rows = {float(o): i for i, o in enumerate(batch["observation"].numpy()[:, 0])}
    assert sorted(rows) == [0, 1, 2, 10, 11, 12]
    # Q(s', ·): the online network prefers action 1, the target network values it at 8 (its max is 9).
    online, target = tf.constant([[0.0, 1.0]] * 60), tf.constant([[9.0, 8.0]] * 60)
    one = double_q_target(batch["reward"], batch["discount"], online, target).numpy()
    many = double_q_target(batch["n_step_reward"], batch["n_step_discount"], online, target).numpy()
    # From t=0, n=10 covers all 3 rewards: 1 + 0.5 + 0.25 = 1.75. The terminal episode stops there;
    # the cut one adds γ^3 · Q_target(o_3, argmax Q_online) = 0.125 · 8.
    assert many[rows[0.0]] == pytest.approx(1.75) and many[rows[10.0]] == pytest.approx(1.75 + 0.125 * 8)
    # 1-step from the last action: the terminal row is just its reward, the cut row bootstraps.
    assert one[rows[2.0]] == pytest.approx(1.0) and one[rows[12.0]] == pytest.approx(1.0 + 0.5 * 8)
    # Mid-episode 1-step rows bootstrap in both episodes; their n-step rows reach o_3 like t=0's.
    assert one[rows[1.0]] == one[rows[11.0]] == pytest.approx(5.0)
    np.testing.assert_array_equal(batch["n_step_next_observation"].numpy()[[rows[1.0], rows[11.0]], 0], [3.0, 13.0])


def test_target_network_syncs_every_period(two_episodes):
    builder = DQfDBuilder()
    config = DQfDConfig(batch_size=6, hidden_sizes=(8,), n_step=2, target_update_period=2,
                        normalize_observations=False)
    networks = builder.make_networks(SPECS, config)
    learner = builder.make_learner(networks, builder.make_dataset(two_episodes, "pair", SPECS, config, 0), SPECS, config)

    def synced() -> bool:
        return all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(networks.online.variables,
                                                                       networks.target.variables))
    assert synced()
    learner.run(1)
    assert not synced()
    learner.run(1)
    assert synced() and int(learner.steps.numpy()) == 2


@pytest.fixture(scope="module")
def catch_run(tmp_path_factory):
    """`rlstore train dqfd` on 40 expert episodes of catch: 300 updates of a small network."""
    from rlstore.cli import main

    root = tmp_path_factory.mktemp("dqfd_catch")
    store = Store(root / "store")
    env = make_environment("catch", seed=0)
    publish_episodes(store, "catch_expert", list(run_episodes(env, make_expert("catch", env), 40)))
    run = root / "run"
    assert main(["--store", str(store.root), "train", "dqfd", "--dataset", "catch_expert@1", "--steps", "300",
                 "--out", str(run), "--batch-size", "64", "--hidden-sizes", "64,64", "--target-update-period", "100",
                 "--log-every", "100", "--seed", "1"]) == 0
    return run


def test_train_dqfd_on_catch_demos_beats_random(catch_run):
    agent = load_trained(catch_run)
    dqfd = evaluate(agent.make_actor, "catch", 50, seed=7, specs=agent.specs)
    rand = evaluate(lambda env: make_policy("random", "catch", env, seed=7), "catch", 50, seed=7)
    assert dqfd["return_mean"] >= 0.8 and dqfd["return_mean"] > rand["return_mean"] + 0.5
    manifest = json.loads((catch_run / "run.json").read_text())
    assert manifest["agent"] == "dqfd" and manifest["config"]["n_step"] == 10 and manifest["config"]["margin"] == 0.8


def test_eval_json_and_export_work_on_a_dqfd_checkpoint(catch_run, tmp_path, capsys):
    from rlstore.cli import main

    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(catch_run), "--env", "catch", "--episodes", "4", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["episodes"] == len(result["returns"]) == 4 and result["step"] == 300

    exported = tmp_path / "policy"
    assert main(["export", "--checkpoint", str(catch_run), "--saved-model", str(exported)]) == 0
    env = make_environment("catch", seed=5)
    observations = np.stack([env.reset().observation for _ in range(8)])
    policy = tf.saved_model.load(str(exported))
    np.testing.assert_array_equal(policy(observations).numpy(), load_trained(catch_run).policy(observations).numpy())
    assert json.loads((exported / "policy.json").read_text())["agent"] == "dqfd"
