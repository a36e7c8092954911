"""Tests for rlstore.envs: experts solve their tasks, seeding is reproducible, episode
boundaries (termination vs truncation) are faithful, and bad specs fail readably."""
from __future__ import annotations

import subprocess
import sys

import dm_env
import gymnasium as gym
import numpy as np
import pytest

from rlstore.envs import EnvSpecError, make_environment, make_expert, make_policy, parse_spec
from rlstore.envs.gym_adapter import GymAdapter


def run_episode(env: dm_env.Environment, policy) -> tuple[float, list[dm_env.TimeStep]]:
    timestep = env.reset()
    timesteps = [timestep]
    episode_return = 0.0
    while not timestep.last():
        timestep = env.step(policy(timestep))
        timesteps.append(timestep)
        episode_return += timestep.reward
    return episode_return, timesteps


def expert_returns(spec: str, episodes: int, seed: int = 0) -> list[float]:
    env = make_environment(spec, seed=seed)
    expert = make_policy("expert", spec, env, seed=seed)
    return [run_episode(env, expert)[0] for _ in range(episodes)]


def test_catch_expert_always_catches():
    assert expert_returns("catch", episodes=20) == [1.0] * 20


def test_catch_custom_board():
    env = make_environment("catch:rows=6,columns=3", seed=0)
    assert env.observation_spec().shape == (6, 3)
    episode_return, timesteps = run_episode(env, make_expert("catch:rows=6,columns=3", env))
    assert episode_return == 1.0
    assert len(timesteps) == 6  # restart + rows - 1 steps


def test_deep_sea_expert_reaches_goal():
    for episode_return in expert_returns("deep_sea:size=10", episodes=3):
        assert episode_return == pytest.approx(1.0 - 0.01)


def test_deep_sea_random_policy_never_reaches_goal():
    env = make_environment("deep_sea:size=20", seed=0)
    policy = make_policy("random", "deep_sea:size=20", env, seed=0)
    returns = [run_episode(env, policy)[0] for _ in range(200)]
    assert max(returns) < 0.5


def test_deep_sea_episode_is_terminal_after_size_steps():
    env = make_environment("deep_sea:size=5", seed=3)
    _, timesteps = run_episode(env, make_policy("random", "deep_sea:size=5", env, seed=3))
    assert len(timesteps) == 6
    assert timesteps[-1].discount == 0.0
    assert not timesteps[-1].observation.any()


def test_tmaze_expert_always_succeeds():
    assert expert_returns("tmaze:length=10", episodes=20) == [1.0] * 20


def test_tmaze_cue_only_visible_at_first_step():
    env = make_environment("tmaze:length=4", seed=1)
    _, timesteps = run_episode(env, make_expert("tmaze:length=4", env))
    assert timesteps[0].observation[:2].sum() == 1.0
    assert all(not ts.observation[:2].any() for ts in timesteps[1:])
    assert timesteps[-1].observation[2] == 1.0  # choice made at the junction
    assert timesteps[-1].discount == 0.0


def test_tmaze_wrong_choice_scores_zero():
    env = make_environment("tmaze:length=3", seed=2)
    expert = make_expert("tmaze:length=3", env)
    timestep = env.reset()
    while not timestep.observation[2]:
        timestep = env.step(expert(timestep))
    timestep = env.step(1 - expert(timestep))
    assert timestep.last() and timestep.reward == 0.0 and timestep.discount == 0.0


def test_tmaze_time_limit_is_a_truncation():
    length = 5
    env = make_environment(f"tmaze:length={length}", seed=0)
    stall = lambda ts: 1 - env.advance_actions[round(ts.observation[3] * length)]  # never advance
    _, timesteps = run_episode(env, stall)
    assert len(timesteps) == 3 * length + 1
    assert timesteps[-1].step_type == dm_env.StepType.LAST
    assert timesteps[-1].discount == 1.0


def test_cartpole_expert_balances():
    assert np.mean(expert_returns("gym:CartPole-v1", episodes=5)) >= 475


def test_mountain_car_expert_reaches_goal():
    assert np.mean(expert_returns("gym:MountainCar-v0", episodes=5)) >= -130


def test_gym_truncation_keeps_discount_one():
    env = make_environment("gym:CartPole-v1?max_steps=5", seed=0)
    _, timesteps = run_episode(env, make_expert("gym:CartPole-v1", env))
    assert len(timesteps) == 6
    assert timesteps[-1].step_type == dm_env.StepType.LAST
    assert timesteps[-1].discount == 1.0


def test_gym_termination_has_discount_zero():
    env = make_environment("gym:CartPole-v1", seed=0)
    always_left = lambda ts: np.int64(0)  # the pole falls within a few dozen steps
    _, timesteps = run_episode(env, always_left)
    assert len(timesteps) < 100
    assert timesteps[-1].step_type == dm_env.StepType.LAST
    assert timesteps[-1].discount == 0.0


def test_gym_specs_and_observation_dtype():
    env = make_environment("gym:CartPole-v1", seed=0)
    obs_spec, action_spec = env.observation_spec(), env.action_spec()
    assert isinstance(obs_spec, dm_env.specs.BoundedArray) and obs_spec.shape == (4,)
    assert isinstance(action_spec, dm_env.specs.DiscreteArray) and action_spec.num_values == 2
    timestep = env.reset()
    assert timestep.observation.dtype == np.float32
    obs_spec.validate(timestep.observation)


def test_gym_dict_spaces_become_dicts_of_specs():
    class DictEnv(gym.Env):
        observation_space = gym.spaces.Dict(
            {"pos": gym.spaces.Box(-1.0, 1.0, (2,), np.float64), "flag": gym.spaces.Discrete(2)}
        )
        action_space = gym.spaces.Discrete(3)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return self.observation_space.sample(), {}

        def step(self, action):
            return self.observation_space.sample(), 1.0, True, False, {}

    env = GymAdapter(DictEnv(), seed=0)
    obs_spec = env.observation_spec()
    assert set(obs_spec) == {"pos", "flag"}
    assert obs_spec["pos"].dtype == np.float32
    timestep = env.step(np.int64(1))
    assert timestep.first() and timestep.observation["pos"].dtype == np.float32
    timestep = env.step(np.int64(1))
    assert timestep.last() and timestep.discount == 0.0


def test_gym_unseeded_resets_continue_the_stream():
    env = make_environment("gym:CartPole-v1", seed=0)
    first, second = env.reset().observation, env.reset().observation
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, make_environment("gym:CartPole-v1", seed=1).reset().observation)


@pytest.mark.parametrize(
    "spec", ["catch", "deep_sea:size=8", "tmaze:length=6", "gym:CartPole-v1", "gym:MountainCar-v0?max_steps=50"]
)
def test_same_seed_same_trajectories(spec):
    def trajectory(seed: int) -> list:
        env = make_environment(spec, seed=seed)
        actions = make_policy("random", spec, env, seed=123)  # same actions for both envs
        records = []
        for _ in range(3):  # several episodes: resets after the first must be reproducible too
            _, timesteps = run_episode(env, actions)
            records += [(ts.step_type, ts.reward, ts.discount, ts.observation.tobytes()) for ts in timesteps]
        return records

    assert trajectory(seed=7) == trajectory(seed=7)


@pytest.mark.parametrize("spec, drawn, values", [
    ("catch", lambda board: int(np.argmax(board[0])), set(range(5))),  # the ball's starting column
    ("tmaze:length=6", lambda observation: int(np.argmax(observation[:2])), {0, 1}),  # the cue, up or down
])
def test_different_seeds_give_different_trajectories(spec, drawn, values):
    """Over 8 seeds (12 episodes each, the same random actions), every seed's trajectories differ
    from every other seed's, and the seeded draw at reset takes each of its possible values. (The
    T-maze's corridor is the spec's, not the seed's: its trajectories differ by their cues alone.)"""
    trajectories, draws = set(), set()
    for seed in range(8):
        env = make_environment(spec, seed=seed)
        actions = make_policy("random", spec, env, seed=123)
        episodes = [run_episode(env, actions)[1] for _ in range(12)]
        trajectories.add(tuple(ts.observation.tobytes() for timesteps in episodes for ts in timesteps))
        draws |= {drawn(timesteps[0].observation) for timesteps in episodes}
    assert len(trajectories) == 8
    assert draws == values


def test_mapping_seed_changes_the_task_and_the_env_seed_does_not():
    mapping = make_environment("deep_sea:size=10", seed=0).action_mapping
    assert np.array_equal(mapping, make_environment("deep_sea:size=10", seed=1).action_mapping)
    assert not np.array_equal(mapping, make_environment("deep_sea:size=10,mapping_seed=1", seed=0).action_mapping)
    corridor = make_environment("tmaze:length=12", seed=0).advance_actions
    assert np.array_equal(corridor, make_environment("tmaze:length=12", seed=7).advance_actions)
    assert not np.array_equal(corridor, make_environment("tmaze:length=12,mapping_seed=3").advance_actions)


@pytest.mark.parametrize(
    "spec",
    ["", "pong", "deep_sea", "deep_sea:size=0", "tmaze:length=x", "catch:rows=5,depth=2", "catch:",
     "gym:", "gym:CartPole-v1?max_steps=", "gym:CartPole-v1?steps=5", "gym:NoSuchEnv-v0"],
)
def test_bad_spec_raises_readable_error(spec):
    with pytest.raises(EnvSpecError, match="valid forms") as error:
        make_environment(spec)
    assert "deep_sea:size=N" in str(error.value)


def test_parse_spec_fills_defaults():
    assert parse_spec("catch").params == {"rows": 10, "columns": 5}
    assert parse_spec("tmaze:length=4").params == {"length": 4, "mapping_seed": 0}
    parsed = parse_spec("gym:MountainCar-v0?max_steps=500")
    assert (parsed.kind, parsed.gym_id, parsed.params) == ("gym", "MountainCar-v0", {"max_steps": 500})


def test_no_expert_for_unknown_gym_env():
    env = make_environment("gym:Acrobot-v1", seed=0)
    with pytest.raises(EnvSpecError, match="no scripted expert"):
        make_expert("gym:Acrobot-v1", env)


def test_envs_do_not_import_tensorflow():
    # A fresh interpreter: other tests in this process may legitimately have imported TF.
    check = "import sys, rlstore.envs; sys.exit('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", check]).returncode == 0
