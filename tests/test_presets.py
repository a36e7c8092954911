"""Per-suite presets: the env spec selects them, the user's flags win, `--preset none` skips them,
and every preset is a valid config of its agent."""
from __future__ import annotations

import pytest

from rlstore.agents import presets, registry


@pytest.mark.parametrize("agent, env, expected", [
    ("r2d3", "gym:MiniGrid-MemoryS9-v0", "memory"), ("r2d3", "gym:MiniGrid-MemoryS13Random-v0", "memory_random"),
    ("r2d3", "tmaze:length=10", "memory"), ("dqfd", "gym:MinAtar/Breakout-v1", "minatar"),
    ("r2d3", "catch", None), ("dqfd", "gym:MiniGrid-MemoryS9-v0", None), ("r2d3", "gym:MinAtar/Breakout-v1", None)])
def test_the_env_spec_selects_the_preset(agent, env, expected):
    preset = presets.preset_for(agent, env)
    assert (preset.name if preset else None) == expected


def test_flags_win_over_the_preset_and_none_turns_it_off():
    name, overrides = presets.starting_config("r2d3", "gym:MiniGrid-MemoryS9-v0", {"gamma": 0.99})
    assert name == "memory" and overrides["gamma"] == 0.99 and overrides["demo_ratio"] == 0.25
    assert presets.starting_config("r2d3", "gym:MiniGrid-MemoryS9-v0", {"gamma": 0.99}, "none") == (None, {"gamma": 0.99})


def test_a_resumed_run_keeps_its_recorded_preset():
    assert presets.overrides_of("memory")["demo_ratio"] == 0.25 and presets.overrides_of(None) == {}


def test_every_preset_is_a_valid_config():
    for preset in presets.PRESETS:
        config = registry.get(preset.agent).make_config(preset.overrides)
        assert all(getattr(config, key) == value for key, value in preset.overrides.items())


@pytest.mark.parametrize("spec", ["gym:MiniGrid-MemoryS9-v0", "gym:MiniGrid-MemoryS13Random-v0", "tmaze:length=10"])
def test_memory_preset_windows_hold_every_expert_demonstration_whole(spec):
    """Logged demonstrations carry no LSTM state, so a demonstration window that starts mid-episode
    starts from zeros: if an episode outgrew the preset's first window, its junction turn would be
    taught without the cue. The expert's longest episodes (20, cues balanced) fit in one window."""
    from rlstore.envs import balance_cues, make_environment, make_policy
    from rlstore.rollout import run_episodes

    env = balance_cues(make_environment(spec, seed=0))
    episodes = run_episodes(env, make_policy("expert", spec, env), 20)
    window = registry.get("r2d3").make_config(presets.preset_for("r2d3", spec).overrides).sequence_length
    assert max(len(episode["steps"]["reward"]) for episode in episodes) <= window
