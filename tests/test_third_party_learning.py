"""Learning happens on the third-party tasks, on a tiny budget: BC from the scripted experts'
demonstrations beats a random policy on MinAtar Breakout (boolean frames) and trains and
evaluates on MiniGrid memory (dict observations whose mission text the network skips)."""
from __future__ import annotations

from rlstore.agents.evaluation import evaluate
from rlstore.agents.runs import load_trained
from rlstore.agents.training import Schedule, train
from rlstore.envs import balance_cues, make_environment, make_policy
from rlstore.rollout import run_episodes
from rlstore.store import Store
from tests.helpers import publish_episodes

SMALL = {"batch_size": 64, "hidden_sizes": (64,)}


def _expert_store(tmp_path, spec: str, episodes: int) -> Store:
    store = Store(tmp_path / "store")
    env = balance_cues(make_environment(spec, seed=0))
    publish_episodes(store, "expert", list(run_episodes(env, make_policy("expert", spec, env), episodes)))
    return store


def test_bc_learns_breakout_from_the_expert(tmp_path):
    spec = "gym:MinAtar/Breakout-v1?max_steps=60"
    store = _expert_store(tmp_path, spec, 8)
    train("bc", store, "expert", tmp_path / "bc", Schedule(steps=300, log_every=100), config=SMALL, seed=0,
          progress=False)
    trained = load_trained(tmp_path / "bc")
    bc = evaluate(trained.make_actor, spec, 5, specs=trained.specs)
    random = evaluate(lambda env: make_policy("random", spec, env, seed=0), spec, 5)
    assert bc["return_mean"] > random["return_mean"] + 1, (bc["returns"], random["returns"])


def test_bc_trains_and_evaluates_on_minigrid_memory(tmp_path):
    spec = "gym:MiniGrid-MemoryS7-v0"
    store = _expert_store(tmp_path, spec, 8)
    assert "steps/observation/mission" in store.manifest("expert").schema.describe()
    train("bc", store, "expert", tmp_path / "bc", Schedule(steps=20, log_every=20), config=SMALL, progress=False)
    trained = load_trained(tmp_path / "bc")
    assert set(trained.specs.observation) == {"image", "direction"}
    result = evaluate(trained.make_actor, spec, 2, specs=trained.specs)
    assert 0.0 <= result["success_rate"] <= 1.0 and result["seed_use"] == "evaluation"
