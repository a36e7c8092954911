"""BC end to end on real store versions and real environments: learning, resuming, lineage,
evaluation, export to a SavedModel loaded in a fresh process, and the losses themselves."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from rlstore.agents.errors import AgentError
from rlstore.agents.evaluation import evaluate
from rlstore.agents.logging import read_csv
from rlstore.agents.runs import load_trained
from rlstore.agents.training import Schedule, train
from rlstore.envs import make_environment, make_expert, make_policy
from rlstore.rollout import run_episodes
from rlstore.store import Store
from tests.helpers import publish_episodes, rich_episode

SMALL = {"batch_size": 64, "hidden_sizes": (64, 64)}


@pytest.fixture(scope="module")
def catch_store(tmp_path_factory) -> Store:
    """A store holding 40 expert episodes of catch (`catch_expert@1`)."""
    store = Store(tmp_path_factory.mktemp("bc_store"))
    env = make_environment("catch", seed=0)
    publish_episodes(store, "catch_expert", list(run_episodes(env, make_expert("catch", env), 40)))
    return store


@pytest.fixture(scope="module")
def trained(catch_store, tmp_path_factory):
    """A BC run on catch: 300 updates, evaluated every 150."""
    out = tmp_path_factory.mktemp("bc_run") / "run"
    summary = train("bc", catch_store, "catch_expert", out, Schedule(steps=300, log_every=50, eval_env="catch",
                    eval_every=150, eval_episodes=10), config=SMALL, seed=1, progress=False)
    return out, summary


def test_bc_on_catch_beats_random(trained):
    out, summary = trained
    agent = load_trained(out)
    bc = evaluate(agent.make_actor, "catch", 50, seed=7, specs=agent.specs)
    rand = evaluate(lambda env: make_policy("random", "catch", env, seed=7), "catch", 50, seed=7)
    assert bc["return_mean"] > rand["return_mean"] + 0.5
    assert bc["return_mean"] >= 0.8
    assert [e["step"] for e in summary["evaluations"]] == [0, 150, 300]


def test_run_manifest_names_dataset_config_seed_and_code(trained, catch_store):
    out, _ = trained
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["agent"] == "bc" and manifest["seed"] == 1
    assert manifest["dataset"]["ref"] == "catch_expert@1"
    assert manifest["dataset"]["manifest_sha256"] and manifest["dataset"]["num_episodes"] == 40
    assert manifest["config"]["batch_size"] == 64 and manifest["config"]["hidden_sizes"] == [64, 64]
    assert manifest["specs"]["action"]["num_values"] == 3
    (session,) = manifest["sessions"]
    assert session["code"]["rlstore"] and "git_commit" in session["code"]
    assert (session["start_step"], session["end_step"]) == (0, 300)
    rows = read_csv(out / "logs" / "train.csv")
    assert [r["step"] for r in rows] == list(range(50, 301, 50))
    assert {"loss", "accuracy", "updates_per_s"} <= set(rows[-1])
    assert list((out / "logs" / "tensorboard").iterdir())


def test_resumed_run_continues_the_step_counter(catch_store, tmp_path):
    out = tmp_path / "run"
    first = train("bc", catch_store, "catch_expert", out, Schedule(steps=20, log_every=10), config=SMALL, progress=False)
    assert (first["start_step"], first["steps"]) == (0, 20)
    second = train("bc", catch_store, "catch_expert", out, Schedule(steps=50, log_every=10), progress=False)
    assert (second["start_step"], second["steps"]) == (20, 50)
    assert load_trained(out).step == 50
    assert [r["step"] for r in read_csv(out / "logs" / "train.csv")] == [10, 20, 30, 40, 50]
    manifest = json.loads((out / "run.json").read_text())
    assert [(s["start_step"], s["end_step"]) for s in manifest["sessions"]] == [(0, 20), (20, 50)]
    with pytest.raises(AgentError, match="batch_size is 64, not 128"):
        train("bc", catch_store, "catch_expert", out, Schedule(steps=60), config={"batch_size": 128}, progress=False)


def test_same_seed_same_run(catch_store, tmp_path):
    losses = []
    for name in ("a", "b"):
        train("bc", catch_store, "catch_expert", tmp_path / name, Schedule(steps=30, log_every=10), config=SMALL,
              seed=3, progress=False)
        losses.append([r["loss"] for r in read_csv(tmp_path / name / "logs" / "train.csv")])
    assert losses[0] == losses[1]


def test_eval_json_has_required_keys(trained, capsys):
    from rlstore.cli import main

    out, _ = trained
    assert main(["eval", "--checkpoint", str(out), "--env", "catch", "--episodes", "4", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"return_mean", "return_std", "episodes", "returns"} <= set(result)
    assert result["episodes"] == len(result["returns"]) == 4 and result["step"] == 300
    assert (result["seed"], result["seed_use"]) == (10_000, "evaluation")  # never a demonstration seed
    assert result["success_rate"] == sum(r > 0 for r in result["returns"]) / 4  # catch: the ball is caught


def test_eval_refuses_an_env_with_other_observations(trained, capsys):
    from rlstore.cli import main

    out, _ = trained
    assert main(["eval", "--checkpoint", str(out), "--env", "gym:CartPole-v1", "--episodes", "1"]) == 1
    assert capsys.readouterr().err.startswith("error: environment 'gym:CartPole-v1' has observations")


def test_train_cli_then_export_loads_in_a_fresh_process(catch_store, tmp_path, capsys):
    from rlstore.cli import main

    run, exported = tmp_path / "run", tmp_path / "policy"
    assert main(["--store", str(catch_store.root), "train", "bc", "--dataset", "catch_expert@1", "--steps", "200",
                 "--out", str(run), "--batch-size", "64", "--hidden-sizes", "64,64", "--seed", "2"]) == 0
    assert main(["export", "--checkpoint", str(run), "--saved-model", str(exported)]) == 0
    assert "trained bc on catch_expert@1: steps 0 -> 200" in capsys.readouterr().out

    env = make_environment("catch", seed=5)
    observations = np.stack([ts.observation for ts in _timesteps(env, 8)])
    agent = load_trained(run)
    expected = agent.policy(observations).numpy()
    script = (
        "import json, sys, numpy as np, tensorflow as tf\n"
        "policy = tf.saved_model.load(sys.argv[1])\n"
        "obs = np.load(sys.argv[2])\n"
        "called = policy(obs).numpy()\n"
        "served = policy.signatures['serving_default'](observation=tf.constant(obs))['action'].numpy()\n"
        "print(json.dumps({'called': called.tolist(), 'served': served.tolist(), 'dtype': str(called.dtype),\n"
        "                  'foreign': sorted(m for m in sys.modules if m.split('.')[0] in ('rlstore', 'agents', 'sonnet'))}))\n"
    )
    np.save(tmp_path / "obs.npy", observations)
    result = _fresh_python(script, exported, tmp_path / "obs.npy")
    assert result["called"] == result["served"] == expected.tolist()
    assert result["dtype"] == "int64" and result["foreign"] == []
    assert json.loads((exported / "policy.json").read_text())["action"]["num_values"] == 3


def test_dict_image_observations_and_continuous_losses(tmp_path):
    """Nested dict observation with a uint8 image, continuous 2-d actions: both losses train and export."""
    store = Store(tmp_path / "store")
    publish_episodes(store, "rich", [rich_episode(12, seed=i) for i in range(6)])
    for loss in ("mse", "gaussian_nll"):
        out = tmp_path / loss
        train("bc", store, "rich", out, Schedule(steps=120, log_every=40),
              config={"batch_size": 32, "hidden_sizes": (32,), "continuous_loss": loss}, progress=False)
        rows = read_csv(out / "logs" / "train.csv")
        assert rows[-1]["loss"] < rows[0]["loss"]
        agent = load_trained(out)
        assert agent.specs.observation["pixels"].image and not agent.specs.observation["state/pos"].image
    from rlstore.agents.export import export_saved_model

    exported = export_saved_model(agent, tmp_path / "policy")
    episode = rich_episode(3, seed=99)
    flat = {"observation__pixels": episode["steps"]["observation"]["pixels"],
            "observation__state__mode": episode["steps"]["observation"]["state"]["mode"],
            "observation__state__pos": episode["steps"]["observation"]["state"]["pos"]}
    np.savez(tmp_path / "obs.npz", **flat)
    script = (
        "import json, sys, numpy as np, tensorflow as tf\n"
        "policy = tf.saved_model.load(sys.argv[1])\n"
        "obs = dict(np.load(sys.argv[2]))\n"
        "nested = {'pixels': obs['observation__pixels'], 'state': {'mode': obs['observation__state__mode'],\n"
        "          'pos': obs['observation__state__pos']}}\n"
        "called = policy(nested).numpy()\n"
        "served = policy.signatures['serving_default'](**{k: tf.constant(v) for k, v in obs.items()})['action']\n"
        "print(json.dumps({'called': called.tolist(), 'served': served.numpy().tolist()}))\n"
    )
    result = _fresh_python(script, exported, tmp_path / "obs.npz")
    assert np.asarray(result["called"]).shape == (3, 2)
    np.testing.assert_allclose(result["called"], result["served"], rtol=1e-6)


def test_losses_ignore_last_steps_and_match_their_formulas():
    import tensorflow as tf

    from rlstore.agents.bc.learning import cross_entropy_loss, gaussian_nll_loss, mse_loss

    logits = tf.constant([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [5.0, 5.0, 5.0]])
    mask = tf.constant([1.0, 1.0, 0.0])  # the third row is an episode's last step
    base = cross_entropy_loss({"logits": logits}, tf.constant([0, 1, 0]), mask)
    changed = cross_entropy_loss({"logits": logits}, tf.constant([0, 1, 2]), mask)
    log_softmax = logits.numpy() - np.log(np.exp(logits.numpy()).sum(-1, keepdims=True))
    assert float(base["loss"]) == pytest.approx(-(log_softmax[0, 0] + log_softmax[1, 1]) / 2, rel=1e-6)
    assert float(base["loss"]) == float(changed["loss"]) and float(base["accuracy"]) == 1.0

    mean = tf.constant([[0.0, 1.0], [2.0, 2.0], [9.0, 9.0]])
    actions = tf.constant([[1.0, 1.0], [0.0, 2.0], [0.0, 0.0]])
    assert float(mse_loss({"mean": mean}, actions, mask)["loss"]) == pytest.approx((0.5 + 2.0) / 2)
    log_std = tf.constant([[0.0, math.log(2.0)], [0.5, -0.5], [0.0, 0.0]])
    std = np.exp(log_std.numpy()[:2])
    nll = -np.sum(-0.5 * ((actions.numpy()[:2] - mean.numpy()[:2]) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi), axis=1)
    got = gaussian_nll_loss({"mean": mean, "log_std": log_std}, actions, mask)["loss"]
    assert float(got) == pytest.approx(nll.mean(), rel=1e-5)


def _timesteps(env, count: int):
    expert = make_expert("catch", env)
    timestep = env.reset()
    for _ in range(count):
        yield timestep
        timestep = env.step(expert(timestep))
        if timestep.last():
            timestep = env.reset()


def _fresh_python(script: str, *args) -> dict:
    env = {"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"}
    completed = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                               env=env, cwd="/", timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])
