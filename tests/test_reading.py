"""tf.data readers and mixing over real store versions (real TFDS shards, nothing mocked)."""
import numpy as np
import pytest
import tensorflow as tf

from rlstore.reading import episodes, mix, sequences, steps, transitions
from rlstore.reading.decoding import decode_episodes
from rlstore.reading.transforms import episode_sequences, episode_transitions
from rlstore.schema import FieldSpec, Schema
from rlstore.store import Store
from tests.helpers import publish_episodes, rich_episode, steps_equal, vector_episode


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """'vec' (two segments, terminal and time-limited episodes), 'other' and 'rich' (images)."""
    store = Store(tmp_path_factory.mktemp("reading"))
    vec = [vector_episode(5 + i, seed=i, terminal=i % 2 == 0) for i in range(10)]
    publish_episodes(store, "vec", vec[:6])
    publish_episodes(store, "vec", vec[6:])
    other = [vector_episode(6, seed=100 + i) for i in range(4)]
    publish_episodes(store, "other", other)
    rich = [rich_episode(3 + i, seed=i) for i in range(4)]
    publish_episodes(store, "rich", rich)
    return store, {"vec": vec, "other": other, "rich": rich}


def _numpy(tree):
    return tf.nest.map_structure(lambda t: t.numpy(), tree)


def _take(dataset, count):
    return [_numpy(batch) for batch in dataset.take(count)]


def _epoch(dataset):
    """Every batch of a finite dataset, concatenated leaf by leaf."""
    batches = _take(dataset, -1)
    return tf.nest.map_structure(lambda *leaves: np.concatenate(leaves), *batches)


def _steps(rewards, discounts, observations=None):
    """One hand-made episode's step dict (time axis first)."""
    length = len(rewards)
    return {"observation": tf.constant(observations if observations is not None else np.arange(length), tf.float32),
            "action": tf.zeros([length], tf.int64),
            "reward": tf.constant(rewards, tf.float32), "discount": tf.constant(discounts, tf.float32),
            "is_first": tf.constant(np.arange(length) == 0), "is_last": tf.constant(np.arange(length) == length - 1),
            "is_terminal": tf.constant((np.arange(length) == length - 1) & (discounts[-2] == 0))}


# ---- transforms ------------------------------------------------------------------------------

def test_n_step_terminal_stops_bootstrapping_and_time_limit_keeps_it():
    terminal = _steps([1.0, 2.0, 3.0, 0.0], [1.0, 1.0, 0.0, 0.0])
    cut = _steps([1.0, 2.0, 3.0, 0.0], [1.0, 1.0, 1.0, 0.0])
    for episode, discounts in ((terminal, [0.25, 0.0, 0.0]), (cut, [0.25, 0.25, 0.5])):
        rows = _numpy(episode_transitions(episode, n_step=2, gamma=0.5))
        np.testing.assert_allclose(rows["reward"], [1 + 0.5 * 2, 2 + 0.5 * 3, 3])  # the window stops at the end
        np.testing.assert_allclose(rows["discount"], discounts)  # gamma^m included; 0 only after the terminal
        np.testing.assert_array_equal(rows["observation"], [0, 1, 2])
        np.testing.assert_array_equal(rows["next_observation"], [2, 3, 3])  # o_{t+n}, clipped to the last step
    one_step = _numpy(episode_transitions(cut, n_step=1, gamma=0.9))
    np.testing.assert_allclose(one_step["reward"], [1, 2, 3])
    np.testing.assert_allclose(one_step["discount"], [0.9, 0.9, 0.9])
    np.testing.assert_array_equal(one_step["next_observation"], [1, 2, 3])


def test_n_step_vector_rewards_share_the_scalar_discount():
    episode = {**_steps([0.0] * 4, [1.0, 1.0, 0.0, 0.0]), "reward": tf.constant([[1.0, 10.0]] * 3 + [[0.0, 0.0]])}
    rows = _numpy(episode_transitions(episode, n_step=2, gamma=0.5))
    np.testing.assert_allclose(rows["reward"], [[1.5, 15], [1.5, 15], [1, 10]])
    np.testing.assert_allclose(rows["discount"], [0.25, 0, 0])


def test_n_step_never_reaches_into_the_next_episode():
    first = _steps([1.0, 1.0, 0.0], [1.0, 1.0, 0.0], observations=[0, 1, 2])
    second = _steps([5.0, 5.0, 5.0, 0.0], [1.0, 1.0, 0.0, 0.0], observations=[10, 11, 12, 13])
    joined = tf.nest.map_structure(lambda a, b: tf.concat([a, b], 0), first, second)
    rows = _numpy(episode_transitions(joined, n_step=3, gamma=1.0))
    np.testing.assert_allclose(rows["reward"], [2, 1, 15, 10, 5])
    np.testing.assert_allclose(rows["discount"], [1, 1, 0, 0, 0])
    np.testing.assert_array_equal(rows["next_observation"], [2, 2, 13, 13, 13])


def test_sequence_layout_with_burn_in_and_period():
    rows = _numpy(episode_sequences(_steps(np.ones(10), np.ones(10)), length=4, period=3, burn_in=2, is_demo=True))
    # span 6; starts 0, 3, 6 (the sequence from 6 reaches the last step, so it is the final one)
    np.testing.assert_array_equal(rows["observation"], [[0, 1, 2, 3, 4, 5], [3, 4, 5, 6, 7, 8], [6, 7, 8, 9, 0, 0]])
    np.testing.assert_array_equal(rows["mask"], [[1] * 6, [1] * 6, [1, 1, 1, 1, 0, 0]])
    np.testing.assert_array_equal(rows["is_last"], [[0] * 6, [0] * 6, [0, 0, 0, 1, 0, 0]])
    np.testing.assert_array_equal(rows["is_demo"], [True, True, True])
    short = _numpy(episode_sequences(_steps(np.ones(3), np.ones(3)), length=5, period=2))
    np.testing.assert_array_equal(short["mask"], [[1, 1, 1, 0, 0]])


def test_sequences_are_padded_at_episode_ends_never_continued():
    first = _steps(np.ones(5), np.ones(5), observations=[1, 2, 3, 4, 5])
    second = _steps(np.ones(4), np.ones(4), observations=[11, 12, 13, 14])
    joined = tf.nest.map_structure(lambda a, b: tf.concat([a, b], 0), first, second)
    rows = _numpy(episode_sequences(joined, length=3, period=2))
    np.testing.assert_array_equal(rows["observation"], [[1, 2, 3], [3, 4, 5], [11, 12, 13], [13, 14, 0]])
    np.testing.assert_array_equal(rows["mask"], [[1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 0]])
    np.testing.assert_array_equal(rows["is_demo"], [False] * 4)


def test_bad_arguments_are_refused():
    episode = _steps(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="n_step"):
        episode_transitions(episode, n_step=0)
    with pytest.raises(ValueError, match="period"):
        episode_sequences(episode, length=2, period=0)


# ---- decoding ------------------------------------------------------------------------------

def test_raw_and_zlib_tensors_decode_exactly():
    episode = vector_episode(4, seed=7)
    derived = Schema.derive(episode)
    for encoding in ("bytes", "zlib"):
        schema = Schema({**derived.steps, "observation": FieldSpec("float32", (4,), encoding)}, derived.episode)
        stepped, metadata = decode_episodes(tf.constant([schema.encode(episode)] * 2), schema)
        assert steps_equal(episode, _numpy(tf.nest.map_structure(lambda leaf: leaf[:4], stepped)))
        np.testing.assert_array_equal(metadata["episode_id"].numpy(), [7, 7])


def test_images_dicts_and_metadata_decode_equal_to_what_went_in(data):
    store, originals = data
    read = {int(e["episode_id"]): e for e in map(_numpy, episodes(store, "rich"))}
    assert sorted(read) == [0, 1, 2, 3]
    for original in originals["rich"]:
        got = read[int(original["episode_id"])]
        assert steps_equal(original, got["steps"]) and got["task"] == b"reach"
        assert got["steps"]["observation"]["pixels"].dtype == np.uint8
    rows = _epoch(transitions(store, "rich", shuffle=False, repeat=False, batch_size=4))
    first = originals["rich"][0]["steps"]["observation"]
    np.testing.assert_array_equal(rows["observation"]["pixels"][:2], first["pixels"][:2])
    np.testing.assert_array_equal(rows["next_observation"]["state"]["pos"][:2], first["state"]["pos"][1:3])


# ---- readers over a version ----------------------------------------------------------------

def test_one_step_transitions_cover_each_step_once_per_epoch(data):
    store, originals = data
    manifest = store.manifest("vec")
    rows = _epoch(transitions(store, "vec", n_step=1, gamma=0.9, batch_size=7, repeat=False))
    assert len(rows["reward"]) == manifest.num_steps - manifest.num_episodes == 85
    following = {}
    for episode in originals["vec"]:
        s = episode["steps"]
        for t in range(len(s["reward"]) - 1):
            following[s["observation"][t].tobytes()] = (s["observation"][t + 1], s["reward"][t], 0.9 * s["discount"][t])
    assert len({o.tobytes() for o in rows["observation"]}) == 85
    for observation, next_observation, reward, discount in zip(rows["observation"], rows["next_observation"],
                                                               rows["reward"], rows["discount"]):
        want = following[observation.tobytes()]
        np.testing.assert_array_equal(next_observation, want[0])
        assert reward == want[1] and np.isclose(discount, want[2])


def test_steps_and_episodes_read_every_one_exactly_once_per_epoch(data):
    store, originals = data
    assert len(_epoch(steps(store, "vec", batch_size=16, repeat=False))["reward"]) == store.manifest("vec").num_steps
    ids = [int(e["episode_id"]) for e in episodes(store, "vec", seed=3)]
    assert sorted(ids) == list(range(10))
    assert [int(e["episode_id"]) for e in episodes(store, "vec@1", shuffle=False)] == list(range(6))


def test_sequences_reader_batches_masked_sequences_from_single_episodes(data):
    store, originals = data
    where = {}
    for index, episode in enumerate(originals["vec"]):
        for t, observation in enumerate(episode["steps"]["observation"]):
            where[observation.tobytes()] = (index, t)
    dataset = sequences(store, "vec", length=3, period=2, burn_in=1, batch_size=4, is_demo=True, repeat=False)
    rows = _epoch(dataset)
    assert rows["observation"].shape[1:] == (4, 4) and rows["is_demo"].all()
    # episodes of 5..14 steps with span 4 and period 2: ceil((T - 4) / 2) + 1 sequences each
    assert len(rows["mask"]) == sum((len(e["steps"]["reward"]) - 4 + 1) // 2 + 1 for e in originals["vec"])
    for observation, mask in zip(rows["observation"], rows["mask"]):
        real = int(mask.sum())
        assert mask[:real].all() and not observation[real:].any()
        places = [where[o.tobytes()] for o in observation[:real]]
        assert len({episode for episode, _ in places}) == 1
        assert [t for _, t in places] == list(range(places[0][1], places[0][1] + real))


@pytest.mark.parametrize("reader", [
    lambda store, seed: transitions(store, "vec", n_step=3, batch_size=8, seed=seed),
    lambda store, seed: steps(store, "vec", batch_size=8, seed=seed),
    lambda store, seed: sequences(store, "vec", length=3, period=2, batch_size=4, seed=seed),
    lambda store, seed: mix({transitions(store, "vec", batch_size=8, seed=seed): 1,
                             transitions(store, "other", batch_size=8, seed=seed): 1}, seed=seed).dataset,
])
def test_same_seed_same_batches(data, reader):
    store, _ = data
    first, again, other = (_take(reader(store, seed), 6) for seed in (5, 5, 6))
    same = tf.nest.map_structure(np.array_equal, first, again)
    assert all(tf.nest.flatten(same))
    assert not all(tf.nest.flatten(tf.nest.map_structure(np.array_equal, first, other)))
    assert tf.nest.flatten(first[0])[0].shape[0] in (4, 8)  # repeated readers give full batches


def test_mix_achieves_the_set_ratio_and_labels_each_row(data):
    store, originals = data
    rewards = [{float(r) for e in originals[name] for r in e["steps"]["reward"][:-1]} for name in ("vec", "other")]
    mixed = mix({transitions(store, "vec", batch_size=16): 0.3, transitions(store, "other", batch_size=16): 0.7},
                batch_size=16)
    assert mixed.achieved() == {"source0": 0.0, "source1": 0.0}
    for batch in _take(mixed.dataset, 50):
        assert batch["source"].shape == (16,)
        assert all(float(r) in rewards[s] for r, s in zip(batch["reward"], batch["source"]))
    assert sum(mixed.served().values()) == 50 * 16
    assert abs(mixed.achieved()["source0"] - 0.3) < 0.01
    summary = mixed.summary()["sources"]
    assert [(s["name"], s["weight"]) for s in summary] == [("source0", 0.3), ("source1", 0.7)]


def test_mix_of_a_source_that_ends_gives_only_full_batches(data):
    """A Reverb sample dataset ends when its rate limiter times out: what is left of it then is
    dropped, not served as a short batch."""
    store, _ = data
    ending = transitions(store, "vec", batch_size=10, repeat=False).take(3)  # 30 rows: 7 batches' worth and 2
    batches = list(mix({ending: 0.25, transitions(store, "other", batch_size=16): 0.75}, batch_size=16).dataset)
    assert len(batches) == 7 and all(batch["source"].shape == (16,) for batch in batches)


def test_mix_reads_dataset_references_from_the_store(data):
    store, _ = data
    mixed = mix({"vec": 1, "other@1": 1}, store=store, batch_size=10)
    batch = next(iter(mixed))
    assert sorted(batch) == ["action", "discount", "next_observation", "observation", "reward", "source"]
    assert mixed.served() == {"vec": 5, "other@1": 5}
    with pytest.raises(ValueError, match="store="):
        mix({"vec": 1})
