"""MinAtar and MiniGrid through the `gym:` spec: specs, experts, cue-balanced recording, and
their dict / boolean / text observations stored and read back unchanged."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from rlstore.cli import main
from rlstore.envs import balance_cues, hidden_cue, make_environment, make_policy
from rlstore.rollout import run_episodes
from rlstore.store import Store

MEMORY_TASKS = ["MiniGrid-MemoryS7-v0", "MiniGrid-MemoryS9-v0", "MiniGrid-MemoryS11-v0", "MiniGrid-MemoryS13-v0",
                "MiniGrid-MemoryS13Random-v0", "MiniGrid-MemoryS17Random-v0"]


def mean_return(spec: str, kind: str, episodes: int, seed: int = 1) -> float:
    env = make_environment(spec, seed=seed)
    policy = make_policy(kind, spec, env, seed=seed)
    return float(np.mean([episode["steps"]["reward"].sum() for episode in run_episodes(env, policy, episodes)]))


@pytest.mark.parametrize("game, channels", [("Breakout", 4), ("Freeway", 7), ("SpaceInvaders", 6)])
def test_minatar_frames_and_expert_beats_random(game, channels):
    spec = f"gym:MinAtar/{game}-v1?max_steps=150"
    env = make_environment(spec, seed=0)
    assert env.observation_spec().shape == (10, 10, channels) and env.observation_spec().dtype == np.bool_
    assert env.reset().observation.dtype == np.bool_
    assert mean_return(spec, "expert", 2) > mean_return(spec, "random", 2) + 1


def test_freeway_expert_acts_on_the_frame_alone():
    """Demonstrations an agent can imitate: states that look the same get the same action, whatever
    the timers the frame does not show (when each car and the chicken can next move)."""
    import copy

    from rlstore.envs.minatar_experts import freeway

    env = make_environment("gym:MinAtar/Freeway-v1", seed=0)
    env.reset()
    game = env.gym_env.unwrapped.game.env
    actions = []
    for _ in range(300):
        twin = copy.deepcopy(game)
        twin.move_timer = 3 - twin.move_timer
        for car in twin.cars:
            car[2] = abs(car[3]) - car[2]
        assert np.array_equal(twin.state(), game.state())
        actions.append(freeway(game))
        assert freeway(twin) == actions[-1]
        env.step(int(np.random.default_rng(len(actions)).integers(3)))
    assert {"u", "n"} <= set(actions)


def test_minatar_gets_the_suites_time_limit():
    env = make_environment("gym:MinAtar/Breakout-v1", seed=0)
    assert env.gym_env.spec.max_episode_steps == 2500


@pytest.mark.parametrize("task", MEMORY_TASKS)
def test_memory_expert_succeeds_where_random_mostly_fails(task):
    env = make_environment(f"gym:{task}", seed=0)
    expert = make_policy("expert", f"gym:{task}", env)
    episodes = list(run_episodes(env, expert, 4))
    assert all(episode["steps"]["reward"].sum() > 0.9 for episode in episodes)
    # It turns to look at the cue first: the start room's object is in some observed view.
    key_or_ball = [np.isin(episode["steps"]["observation"]["image"][..., 0], (5, 6)).any() for episode in episodes]
    assert all(key_or_ball)


def test_memory_random_policy_rarely_succeeds():
    assert mean_return("gym:MiniGrid-MemoryS9-v0", "random", 6) < 0.5


@pytest.mark.parametrize("spec, cues", [("tmaze:length=4", 2), ("gym:MiniGrid-MemoryS9-v0", 4)])
def test_recording_is_balanced_over_hidden_cues(spec, cues):
    env = balance_cues(make_environment(spec, seed=0))
    shown = Counter()
    for _ in range(4 * cues):
        env.reset()
        shown[hidden_cue(env._env)] += 1
    assert len(shown) == cues and set(shown.values()) == {4}
    assert env.counts == shown


def test_memory_episodes_survive_record_ingest_and_read(tmp_path):
    """Dict observations with a uint8 image, an int direction and the mission text: npz logs
    → Beam ingest → TFDS shards → tf.data, every value unchanged."""
    from rlstore.datasets.demonstrations import record_npz_logs
    from rlstore.pipelines.ingest import ingest
    from rlstore.pipelines.sources.npz import episode_from_arrays

    paths = record_npz_logs("gym:MiniGrid-MemoryS7-v0", "expert", 2, tmp_path / "logs", seed=3)
    store = Store(tmp_path / "store")
    manifest = ingest(store, "memory", [str(tmp_path / "logs")], format="npz", beam_args=["--direct_num_workers=1"])
    assert manifest.schema.describe()["steps/observation/mission"] == "str[scalar]"
    stored = sorted((episode["steps"].batch(1000).get_single_element() for episode in store.load("memory")),
                    key=lambda steps: len(steps["reward"]))
    logged = sorted((episode_from_arrays(dict(np.load(path)))["steps"] for path in paths), key=lambda s: len(s["reward"]))
    for read, written in zip(stored, logged):
        observation = read["observation"]
        assert np.array_equal(observation["image"].numpy(), written["observation"]["image"])
        assert np.array_equal(observation["direction"].numpy(), written["observation"]["direction"])
        assert [text.decode() for text in observation["mission"].numpy()] == list(written["observation"]["mission"])
        assert observation["mission"].numpy()[0] == b"go to the matching object at the end of the hallway"


def test_minatar_record_command_stores_boolean_frames(tmp_path, capsys):
    spec = "gym:MinAtar/Freeway-v1?max_steps=30"
    assert main(["--store", str(tmp_path), "record", "--env", spec, "--policy", "expert", "--episodes", "2",
                 "--dataset", "freeway", "--seed", "5"]) == 0
    steps = next(iter(Store(tmp_path).load("freeway")))["steps"].batch(100).get_single_element()
    replay = make_environment(spec, seed=5)
    assert steps["observation"].dtype.name == "bool"
    assert np.array_equal(steps["observation"][0].numpy(), replay.reset().observation)


def test_bad_gym_id_is_one_readable_line(tmp_path, capsys):
    assert main(["--store", str(tmp_path), "record", "--env", "gym:NoSuchEnv-v0", "--policy", "random",
                 "--episodes", "1", "--dataset", "x"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: bad environment spec 'gym:NoSuchEnv-v0'")
    assert "Traceback" not in err and "valid forms: catch" in err and "gym:MiniGrid-MemoryS9-v0" in err


def test_minigrid_memory_recording_comes_in_twins_that_differ_only_in_the_cue():
    """Each layout twice, with either start-room object: the expert walks the same route and turns
    the other way at the junction, so only the remembered cue tells the two episodes' turns apart."""
    spec = "gym:MiniGrid-MemoryS13Random-v0"
    env = balance_cues(make_environment(spec, seed=0))
    episodes = [episode["steps"] for episode in run_episodes(env, make_policy("expert", spec, env), 6)]
    for first, twin in zip(episodes[::2], episodes[1::2]):
        assert first["reward"].sum() > 0.9 and twin["reward"].sum() > 0.9
        np.testing.assert_array_equal(first["action"][:-3], twin["action"][:-3])
        assert {first["action"][-3], twin["action"][-3]} == {0, 1}  # up and down at the split
        np.testing.assert_array_equal(first["observation"]["image"][-3], twin["observation"]["image"][-3])
    assert len(env.counts) == 4 and set(env.counts.values()) <= {1, 2}


def test_fixed_size_minigrid_memory_recording_has_no_twins():
    """A fixed size has few layouts, and twins would halve the distinct ones (S9: R2D3 0.90 -> 0.61)."""
    spec = "gym:MiniGrid-MemoryS9-v0"
    env = balance_cues(make_environment(spec, seed=0))
    episodes = [episode["steps"] for episode in run_episodes(env, make_policy("expert", spec, env), 6)]
    routes = [episode["action"][:-3] for episode in episodes]  # a twin walks its first's route
    assert not all(np.array_equal(first, twin) for first, twin in zip(routes[::2], routes[1::2]))
