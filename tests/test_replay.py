"""Reverb serving of store versions: real Reverb servers over real store versions, nothing mocked."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import portpicker
import pytest
import tensorflow as tf

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # Reverb's import-time distutils version check
    import reverb

from rlstore.replay import (SEQUENCES, TRANSITIONS, Layout, ReplayError, ReplayServer, TableOptions, latest_checkpoint,
                            sample_dataset, update_priorities)
from rlstore.store import Store
from tests.helpers import publish_episodes, rich_episode, vector_episode

REPO = Path(__file__).resolve().parent.parent


def _vec_episodes() -> list:
    return [vector_episode(5 + i, seed=i, terminal=i % 2 == 0) for i in range(12)]


@pytest.fixture(scope="module")
def vec_episodes() -> list:
    return _vec_episodes()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """'vec': 12 episodes of 5..16 steps, terminal and time-limited, in two segments; 'rich':
    nested observations with images and float64 step metadata."""
    store = Store(tmp_path_factory.mktemp("replay"))
    episodes = _vec_episodes()
    publish_episodes(store, "vec", episodes[:7])
    publish_episodes(store, "vec", episodes[7:])
    publish_episodes(store, "rich", [rich_episode(3 + i, seed=i) for i in range(3)])
    return store


def _sample_all(client: reverb.Client, table: str, size: int) -> list:
    """Every item of a small table, found by sampling it far more often than it has items."""
    items = {}
    for sample in client.sample(table, 60 * size, emit_timesteps=False, unpack_as_table_signature=True):
        items[sample.info.key] = sample.data
    return list(items.values())


def test_one_step_transitions_are_exactly_steps_minus_episodes(store):
    manifest = store.manifest("vec")
    layout = Layout(tables=(TRANSITIONS, SEQUENCES), sequence_length=4, sequence_period=2,
                    sequence_options=TableOptions(prioritized=True))
    with ReplayServer(store, "vec", layout, restore=False) as server:
        expected = manifest.num_steps - manifest.num_episodes
        assert server.loaded[TRANSITIONS] == expected
        assert server.info()[TRANSITIONS].current_size == expected
        assert server.info()[SEQUENCES].current_size == server.loaded[SEQUENCES] > 0
        assert server.info()[TRANSITIONS].sampler_options.HasField("uniform")
        assert server.info()[SEQUENCES].sampler_options.HasField("prioritized")
        batch = next(iter(sample_dataset(server.address, SEQUENCES, batch_size=8)))
        assert batch.data["observation"].shape == (8, 4, 4) and batch.data["mask"].shape == (8, 4)
        assert batch.data["is_demo"].dtype == tf.bool


def _n_step_targets(episodes: list, n_step: int, gamma: float) -> dict:
    """Each transition's (reward, discount, next observation), keyed by its observation, computed
    step by step in plain Python from the episodes themselves (independent of the readers and loader):
    from step t the window takes m = min(n, last - t) actions, sums their discounted rewards and
    multiplies gamma times the stored discount for each."""
    targets = {}
    for episode in episodes:
        steps = episode["steps"]
        last = len(steps["reward"]) - 1
        for t in range(last):
            reward, scale = 0.0, 1.0
            for k in range(min(n_step, last - t)):
                reward += scale * float(steps["reward"][t + k])
                scale *= gamma * float(steps["discount"][t + k])
            following = steps["observation"][min(t + n_step, last)]
            targets[steps["observation"][t].tobytes()] = (reward, scale, following.tobytes())
    return targets


def test_every_item_matches_an_independent_n_step_computation(store, vec_episodes):
    """All 114 transitions of 'vec' (126 steps, 12 episodes) are loaded, each exactly once, and each
    carries the n-step reward, discount and next observation computed independently."""
    expected = _n_step_targets(vec_episodes, n_step=3, gamma=0.9)
    assert len(expected) == 114
    with ReplayServer(store, "vec", Layout(n_step=3, gamma=0.9), restore=False) as server:
        assert server.loaded[TRANSITIONS] == server.info()[TRANSITIONS].current_size == 114
        items = _sample_all(server.client, TRANSITIONS, 114)
    assert len(items) == 114
    assert {item["observation"].tobytes() for item in items} == set(expected)
    for item in items:
        reward, discount, following = expected[item["observation"].tobytes()]
        assert (item["reward"], item["discount"]) == pytest.approx((reward, discount), rel=1e-5)
        assert item["next_observation"].tobytes() == following


def test_one_step_items_carry_both_targets_and_load_into_a_table_of_another_name(store):
    """`Layout(one_step=True)`: each n-step item also has the 1-step target of the same step
    (DQfD's two TD losses); `into` loads the rows into a table named otherwise (e.g. demonstrations)."""
    from rlstore.reading import transitions
    from rlstore.replay import load_version
    from rlstore.replay.tables import make_table, transition_signature

    def rows(n_step: int) -> dict:
        batch = next(iter(transitions(store, "vec", n_step=n_step, gamma=0.9, batch_size=1000, shuffle=False,
                                      repeat=False)))
        return {obs.tobytes(): (reward, discount, following.tobytes()) for obs, reward, discount, following in
                zip(*(batch[key].numpy() for key in ("observation", "reward", "discount", "next_observation")))}

    one, many = rows(1), rows(3)
    layout = Layout(n_step=3, gamma=0.9, one_step=True)
    manifest = store.manifest("vec")
    signature = transition_signature(manifest.schema, one_step=True)
    server = reverb.Server([make_table("demonstrations", layout.options, signature, preload=len(one))])
    try:
        address = f"localhost:{server.port}"
        assert load_version(address, store, "vec", layout, into={TRANSITIONS: "demonstrations"}) == {
            "demonstrations": manifest.num_steps - manifest.num_episodes}
        items = _sample_all(reverb.Client(address), "demonstrations", len(one))
        assert len(items) == len(one)
        for item in items:
            key = item["observation"].tobytes()
            assert (item["reward"], item["discount"]) == pytest.approx(many[key][:2])
            assert item["next_observation"].tobytes() == many[key][2]
            assert (item["one_step_reward"], item["one_step_discount"]) == pytest.approx(one[key][:2])
            assert item["one_step_next_observation"].tobytes() == one[key][2]
    finally:
        server.stop()


def test_nested_images_and_float64_fields_are_served(store):
    layout = Layout(tables=(TRANSITIONS, SEQUENCES), sequence_length=2, sequence_period=1,
                    core_state_shapes=((3,), (3,)))
    with ReplayServer(store, "rich", layout, restore=False) as server:
        item = next(server.client.sample(SEQUENCES, 1, emit_timesteps=False, unpack_as_table_signature=True)).data
        assert item["observation"]["pixels"].shape == (2, 6, 5, 3)
        assert item["temperature"].dtype == np.float64
        assert [state.tolist() for state in item["core_state"]] == [[0.0] * 3] * 2
        transition = next(server.client.sample(TRANSITIONS, 1, emit_timesteps=False,
                                               unpack_as_table_signature=True)).data
        assert transition["next_observation"]["state"]["pos"].shape == (2,)


def test_rate_limiter_and_size_options_reach_the_server(store):
    options = TableOptions(max_size=500, min_size=10, samples_per_insert=4.0, error_buffer=1000.0)
    with ReplayServer(store, "vec", Layout(options=options), restore=False) as server:
        info = server.info()[TRANSITIONS]
        limiter = info.rate_limiter_info
        assert info.max_size == 500 and info.remover_options.HasField("fifo")
        assert (limiter.samples_per_insert, limiter.min_size_to_sample) == (4.0, 10)
        assert (limiter.min_diff, limiter.max_diff) == (40.0 - 1000.0, 40.0 + 1000.0)
    default_buffer = TableOptions(min_size=10, samples_per_insert=2.0)
    with ReplayServer(store, "vec", Layout(options=default_buffer), restore=False) as server:
        info = server.info()[TRANSITIONS]
        loaded = server.loaded[TRANSITIONS]
        # the whole version loads; then each loaded item may be sampled twice on average
        assert info.current_size == loaded
        assert (info.rate_limiter_info.min_diff, info.rate_limiter_info.max_diff) == (20.0 - 2.0, 2.0 * loaded + 2.0)


def test_a_ratio_limiter_too_tight_for_the_version_is_an_error(store):
    options = TableOptions(samples_per_insert=1.0, error_buffer=5.0)
    with pytest.raises(ReplayError, match="rate limiter blocks inserts after 6 items"):
        ReplayServer(store, "vec", Layout(options=options), restore=False)


def test_fifo_max_size_keeps_the_newest_items(store):
    from rlstore.reading import transitions

    rows = next(iter(transitions(store, "vec", batch_size=1000, shuffle=False, repeat=False)))
    observations = [obs.tobytes() for obs in rows["observation"].numpy()]
    with ReplayServer(store, "vec", Layout(options=TableOptions(max_size=6)), restore=False) as server:
        assert server.info()[TRANSITIONS].current_size == 6
        kept = {item["observation"].tobytes() for item in _sample_all(server.client, TRANSITIONS, 6)}
    assert kept == set(observations[-6:])


def test_learner_priority_updates_steer_prioritized_sampling(store):
    layout = Layout(options=TableOptions(prioritized=True, priority_exponent=1.0))
    with ReplayServer(store, "vec", layout, restore=False) as server:
        keys = [sample.info.key for sample in _sample_all_samples(server.client)]
        favourite = keys[0]
        update_priorities(server.client, TRANSITIONS, keys, [1.0 if key == favourite else 0.0 for key in keys])
        batch = next(iter(sample_dataset(server.address, TRANSITIONS, batch_size=16)))
        assert set(batch.info.key.numpy().tolist()) == {favourite}
        assert np.allclose(batch.info.probability.numpy(), 1.0)


def _sample_all_samples(client: reverb.Client) -> list:
    samples = {}
    for sample in client.sample(TRANSITIONS, 3000, emit_timesteps=False):
        samples[sample.info.key] = sample
    return list(samples.values())


def test_checkpoint_into_the_store_restores_items_and_priorities(store):
    layout = Layout(options=TableOptions(max_size=8, prioritized=True, priority_exponent=1.0))
    with ReplayServer(store, "vec", layout, restore=False) as first:
        items = {sample.info.key: sample.data for sample in first.client.sample(TRANSITIONS, 500, emit_timesteps=False)}
        favourite = min(items)
        update_priorities(first.client, TRANSITIONS, list(items), [float(key == favourite) for key in items])
        saved = first.checkpoint()
    assert saved == latest_checkpoint(first.checkpoint_dir)
    assert saved.parent.parent.parent == store.dataset_dir("vec") / "replay_checkpoints"
    with ReplayServer(store, "vec", layout) as second:
        assert second.restored_from == saved and second.loaded == {}
        assert second.info()[TRANSITIONS].current_size == 8
        restored = [s for s in second.client.sample(TRANSITIONS, 20, emit_timesteps=False)]
    assert {s.info.key for s in restored} == {favourite}
    assert all(np.array_equal(a, b) for a, b in zip(restored[0].data, items[favourite]))


def _wait_for_line(process: subprocess.Popen, marker: str, deadline: float) -> str:
    """Reads the server's stdout until a line holds `marker` (a deadline only guards a hang)."""
    output = ""
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        output += line
        if marker in line:
            return output
    process.kill()
    raise AssertionError(f"no {marker!r} line; output so far:\n{output}\nstderr:\n{process.stderr.read()}")


def test_rlstore_serve_runs_in_its_own_process_until_interrupted(store):
    port = portpicker.pick_unused_port()
    command = [sys.executable, "-m", "rlstore", "--store", str(store.root), "serve", "vec@2", "--port", str(port), "--expose",
               "--tables", "transitions,sequences", "--n-step", "3", "--prioritized", "--sequence-length", "4",
               "--period", "2", "--checkpoint-every", "3600", "--fresh"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        banner = _wait_for_line(process, "serving vec@2", time.monotonic() + 120)
        assert f"localhost:{port}" in banner and "transitions" in banner and "prioritized(0.6)" in banner
        client = reverb.Client(f"localhost:{port}")
        manifest = store.manifest("vec@2")
        assert client.server_info()[TRANSITIONS].current_size == manifest.num_steps - manifest.num_episodes
        sample = next(client.sample(TRANSITIONS, 1, emit_timesteps=False, unpack_as_table_signature=True))
        assert sample.data["observation"].shape == (4,)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "checkpoint saved" in out and "stopped" in out
    assert "reverb/cc" not in err  # Reverb's C++ log lines are filtered out
    with pytest.raises(OSError):
        os.kill(process.pid, 0)  # reaped: nothing left running
