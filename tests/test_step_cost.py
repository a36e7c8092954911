"""The `step_ms=N` spec parameter: parsed for every kind of env, stripped for evaluations, and a
wrapped env that still plays the same task (same trajectories, specs and expert), only slower."""
from __future__ import annotations

import time

import pytest

from rlstore.envs import EnvSpecError, make_environment, make_expert, parse_spec, without_step_cost
from rlstore.envs.cues import hidden_cue
from rlstore.envs.step_cost import StepCost


@pytest.mark.parametrize("spec, kind, params, step_ms", [
    ("catch:step_ms=5", "catch", {"rows": 10, "columns": 5}, 5),
    ("catch:rows=6,step_ms=3,columns=3", "catch", {"rows": 6, "columns": 3}, 3),
    ("deep_sea:size=10,step_ms=0", "deep_sea", {"size": 10, "mapping_seed": 0}, 0),
    ("gym:CartPole-v1?step_ms=7", "gym", {}, 7),
    ("gym:CartPole-v1?max_steps=50&step_ms=2", "gym", {"max_steps": 50}, 2),
    ("catch", "catch", {"rows": 10, "columns": 5}, 0),
])
def test_step_ms_is_parsed_apart_from_the_task(spec, kind, params, step_ms):
    parsed = parse_spec(spec)
    assert (parsed.kind, dict(parsed.params), parsed.step_ms) == (kind, params, step_ms)


@pytest.mark.parametrize("spec, plain", [
    ("catch:step_ms=5", "catch"),
    ("catch:rows=6,step_ms=3,columns=3", "catch:rows=6,columns=3"),
    ("gym:CartPole-v1?max_steps=50&step_ms=2", "gym:CartPole-v1?max_steps=50"),
    ("gym:CartPole-v1?step_ms=2", "gym:CartPole-v1"),
    ("tmaze:length=4", "tmaze:length=4"),
])
def test_without_step_cost(spec, plain):
    assert without_step_cost(spec) == plain


@pytest.mark.parametrize("spec, problem", [
    ("catch:step_ms=-1", "step_ms must be >= 0"),
    ("catch:step_ms=fast", "step_ms must be an integer"),
    ("catch:step_ms=1,step_ms=2", "given twice"),
    ("gym:CartPole-v1?speed=2", "expected ['max_steps', 'step_ms']"),
])
def test_bad_step_ms_is_one_readable_error(spec, problem):
    with pytest.raises(EnvSpecError, match="bad environment spec") as error:
        parse_spec(spec)
    assert problem in str(error.value) and "\n" not in str(error.value)


def test_a_slow_env_plays_the_same_task_and_sleeps_each_step():
    slow, fast = make_environment("catch:step_ms=4", seed=3), make_environment("catch", seed=3)
    assert isinstance(slow, StepCost) and not isinstance(fast, StepCost)
    assert slow.observation_spec() == fast.observation_spec() and slow.action_spec() == fast.action_spec()
    expert = make_expert("catch:step_ms=4", slow)
    for _ in range(2):
        slow_step, fast_step = slow.reset(), fast.reset()
        steps = 0
        started = time.perf_counter()
        while not slow_step.last():
            action = expert(slow_step)
            slow_step, fast_step = slow.step(action), fast.step(action)
            assert (slow_step.observation == fast_step.observation).all()
            assert (slow_step.reward, slow_step.discount) == (fast_step.reward, fast_step.discount)
            steps += 1
        assert fast_step.last() and slow_step.reward == 1.0
        assert time.perf_counter() - started >= steps * 0.004  # a lower bound only: it sleeps at least that


def test_task_attributes_pass_through_the_step_cost():
    env = make_environment("tmaze:length=3,step_ms=1", seed=0)
    env.reset()
    assert hidden_cue(env) in ("up", "down")
    assert env.length == 3
