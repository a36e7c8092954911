"""The seed scheme keeps demonstrations, acting, tuning and evaluation apart, and evaluations
report a success rate where the task is won or lost."""
from __future__ import annotations

import pytest

from rlstore import seeds
from rlstore.agents.evaluation import evaluate
from rlstore.envs import make_expert, make_policy


def test_uses_are_disjoint_and_every_seed_helper_stays_in_its_range():
    ranges = [seeds.DEMONSTRATIONS, seeds.ACTING, seeds.TUNING, seeds.EVALUATION]
    for a, b in zip(ranges, ranges[1:]):
        assert a.stop <= b.start
    assert seeds.use_of(seeds.DEFAULT_DEMONSTRATION_SEED) == "demonstrations"
    assert {seeds.use_of(seeds.acting(env_seed, actor)) for env_seed in range(3) for actor in range(8)} == {"acting"}
    assert len({seeds.acting(env_seed, actor) for env_seed in range(3) for actor in range(8)}) == 24
    assert seeds.use_of(seeds.tuning(7)) == "tuning" and seeds.use_of(seeds.evaluation(7)) == "evaluation"
    with pytest.raises(ValueError, match="must lie in"):
        seeds.tuning(2**31)


@pytest.mark.parametrize("run_seed", [39, 40, 4_999, 5_000, 123_456_789, 2**31 - 10_001, 2**31 - 1])
def test_every_run_seed_below_2_31_gets_seeds_of_its_use_that_every_env_takes(run_seed):
    actors = [seeds.acting(run_seed, actor) for actor in (0, 1, 99)]
    assert len(set(actors)) == 3 and {seeds.use_of(seed) for seed in actors} == {"acting"}
    assert seeds.use_of(seeds.tuning(run_seed)) == "tuning"
    assert seeds.use_of(seeds.evaluation(run_seed)) == "evaluation"
    assert max(*actors, seeds.tuning(run_seed), seeds.evaluation(run_seed)) < 2**32


def test_the_largest_env_seed_plays_minatar_whose_rng_takes_32_bit_seeds():
    from rlstore.envs import make_environment

    for seed in (seeds.acting(2**31 - 1, 99), seeds.tuning(2**31 - 1), seeds.evaluation(2**31 - 1)):
        assert make_environment("gym:MinAtar/Breakout-v1", seed=seed).reset().first()


@pytest.mark.parametrize("spec, expected", [("tmaze:length=5", 1.0), ("gym:MiniGrid-MemoryS7-v0", 1.0),
                                            ("deep_sea:size=6", 1.0), ("gym:MinAtar/Breakout-v1?max_steps=20", None)])
def test_evaluation_reports_success_where_the_task_has_it(spec, expected):
    result = evaluate(lambda env: make_expert(spec, env), spec, episodes=3)
    assert result["seed"] == seeds.DEFAULT_EVALUATION_SEED and result["seed_use"] == "evaluation"
    assert result.get("success_rate") == expected


def test_random_policy_fails_the_memory_task_at_evaluation_seeds():
    spec = "gym:MiniGrid-MemoryS9-v0"
    result = evaluate(lambda env: make_policy("random", spec, env, seed=0), spec, episodes=4)
    assert result["success_rate"] <= 0.5
