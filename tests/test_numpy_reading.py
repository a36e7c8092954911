"""rlstore.numpy: the tf.data readers' rows without TensorFlow, over real store versions."""
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from rlstore import numpy as np_reading
from rlstore import reading, tfrecord
from rlstore.errors import StoreError
from rlstore.frames import episode_firsts, stack
from rlstore.numpy import Share
from rlstore.numpy.decoding import decode_episodes
from rlstore.nest import flatten
from rlstore.schema import FieldSpec, Schema
from tests.helpers import frames_store, steps_equal, vector_episode


@pytest.fixture(scope="module")
def stacked_store(tmp_path_factory):
    return frames_store(tmp_path_factory.mktemp("frames"))


@pytest.fixture(scope="module")
def stores(framework_store, stacked_store):
    """The store of each dataset name."""
    return {"vec": framework_store[0], "rich": framework_store[0], "frames": stacked_store[0]}


def _tf_batches(dataset):
    return [tf.nest.map_structure(lambda t: t.numpy(), batch) for batch in dataset]


def _assert_batches_equal(expected, actual):
    assert len(expected) == len(actual)
    for want, got in zip(expected, actual):
        want, got = flatten(want), flatten(got)
        assert sorted(want) == sorted(got)
        for key in want:
            if isinstance(want[key], bytes):  # TF gives a text scalar as bytes, NumPy as a 0-d object array
                assert got[key].item() == want[key]
                continue
            assert want[key].dtype == got[key].dtype, key
            np.testing.assert_array_equal(want[key], got[key], err_msg=key)


def test_example_parser_reads_what_tensorflow_serialises():
    ints = [0, 1, 127, 128, 300, 2**40, -1, -(2**63)]
    example = tf.train.Example(features=tf.train.Features(feature={
        "ints": tf.train.Feature(int64_list=tf.train.Int64List(value=ints)),
        "floats": tf.train.Feature(float_list=tf.train.FloatList(value=[0.5, -2.25, 1e30])),
        "bytes": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"", b"abc", bytes(range(256))])),
        "empty": tf.train.Feature(float_list=tf.train.FloatList(value=[])),
    }))
    parsed = tfrecord.parse_example(example.SerializeToString())
    assert parsed["ints"].tolist() == ints
    np.testing.assert_array_equal(parsed["floats"], np.array([0.5, -2.25, 1e30], np.float32))
    assert parsed["bytes"] == [b"", b"abc", bytes(range(256))]
    assert len(parsed["empty"]) == 0
    with pytest.raises(ValueError):
        tfrecord.parse_example(example.SerializeToString()[:-3])


def test_raw_and_zlib_fields_decode_exactly():
    episode = vector_episode(4, seed=7)
    derived = Schema.derive(episode)
    for encoding in ("bytes", "zlib"):
        schema = Schema({**derived.steps, "observation": FieldSpec("float32", (4,), encoding)}, derived.episode)
        steps, metadata = decode_episodes([schema.encode(episode)] * 2, schema)
        assert steps_equal(episode, {k: v[:4] for k, v in steps.items()})
        np.testing.assert_array_equal(metadata["episode_id"], [7, 7])


def test_images_dicts_text_and_float64_decode_as_tensorflow_decodes_them(framework_store):
    store, originals = framework_store
    mine = list(np_reading.episodes(store, "rich", shuffle=False))
    theirs = _tf_batches(reading.episodes(store, "rich", shuffle=False))
    _assert_batches_equal(theirs, mine)
    for original, got in zip(originals["rich"], mine):
        assert steps_equal(original, got["steps"]) and got["task"] == b"reach"
    assert mine[0]["steps"]["temperature"].dtype == np.float64


@pytest.mark.parametrize("name, read", [
    ("vec", lambda m, store, ref: m.transitions(store, ref, n_step=3, gamma=0.9, batch_size=7, shuffle=False,
                                                  repeat=False)),
    ("vec", lambda m, store, ref: m.steps(store, ref, batch_size=16, shuffle=False, repeat=False)),
    ("vec", lambda m, store, ref: m.sequences(store, ref, length=3, period=2, burn_in=1, batch_size=4,
                                                shuffle=False, repeat=False, is_demo=True)),
    ("rich", lambda m, store, ref: m.transitions(store, ref, n_step=2, batch_size=3, shuffle=False, repeat=False)),
    ("rich", lambda m, store, ref: m.sequences(store, ref, length=2, period=1, batch_size=5, shuffle=False,
                                                 repeat=False)),
    ("frames", lambda m, store, ref: m.transitions(store, ref, n_step=2, batch_size=3, shuffle=False, repeat=False,
                                                   chunk_episodes=2)),
    ("frames", lambda m, store, ref: m.steps(store, ref, batch_size=4, shuffle=False, repeat=False, chunk_episodes=3)),
    ("frames", lambda m, store, ref: m.sequences(store, ref, length=3, period=2, burn_in=1, batch_size=2,
                                                 shuffle=False, repeat=False, chunk_episodes=2)),
])
def test_unshuffled_batches_equal_the_tf_readers_bit_for_bit(stores, name, read):
    store = stores[name]
    _assert_batches_equal(_tf_batches(read(reading, store, name)), list(read(np_reading, store, name)))


def _rows(batches):
    """Every row of some batches as a sorted list of byte strings (a multiset)."""
    flat = [flatten(batch) for batch in batches]
    keys = sorted(flat[0])
    rows = []
    for batch in flat:
        for index in range(len(batch[keys[0]])):
            rows.append(b"|".join(np.ascontiguousarray(batch[key][index]).tobytes() for key in keys))
    return sorted(rows)


def test_a_shuffled_epoch_holds_the_same_rows_as_the_tf_readers(framework_store):
    store, _ = framework_store
    theirs = _tf_batches(reading.transitions(store, "vec", n_step=2, batch_size=8, repeat=False, seed=1))
    mine = list(np_reading.transitions(store, "vec", n_step=2, batch_size=8, repeat=False, seed=1))
    assert [len(b["reward"]) for b in mine] == [8] * 10 + [5]
    assert _rows(mine) == _rows(theirs)


def test_frame_stacks_are_rebuilt_the_dopamine_way(stacked_store):
    store, episodes = stacked_store
    frames = np.concatenate([episode["steps"]["observation"] for episode in episodes])
    is_first = np.concatenate([episode["steps"]["is_first"] for episode in episodes])
    [batch] = np_reading.steps(store, "frames", batch_size=100, shuffle=False, repeat=False, chunk_episodes=6)
    assert batch["observation"].shape == (len(frames), 6, 5, 3)
    np.testing.assert_array_equal(batch["observation"], stack(frames, episode_firsts(is_first), np.arange(len(frames)), 3))
    assert not batch["observation"][0, ..., :2].any() and batch["observation"][0, ..., 2].all()  # o_0 = (0, 0, f_0)
    theirs = _tf_batches(reading.transitions(store, "frames", n_step=3, batch_size=4, repeat=False, seed=2))
    mine = list(np_reading.transitions(store, "frames", n_step=3, batch_size=4, repeat=False, seed=2))
    assert _rows(mine) == _rows(theirs)


@pytest.mark.parametrize("name, make, read", [
    ("vec", lambda store: np_reading.Replay.transitions(store, "vec", n_step=3, gamma=0.9),
     lambda store: np_reading.transitions(store, "vec", n_step=3, gamma=0.9, batch_size=8, repeat=False)),
    ("frames", lambda store: np_reading.Replay.transitions(store, "frames", n_step=2),
     lambda store: np_reading.transitions(store, "frames", n_step=2, batch_size=8, repeat=False)),
    ("frames", lambda store: np_reading.Replay.sequences(store, "frames", length=3, period=2, burn_in=1),
     lambda store: np_reading.sequences(store, "frames", length=3, period=2, burn_in=1, batch_size=8, repeat=False)),
])
def test_a_replay_holds_every_row_of_an_epoch_once_and_samples_them(stores, name, make, read):
    store = stores[name]
    replay = make(store)
    epoch = list(read(store))
    assert len(replay) == sum(len(batch["reward"]) for batch in epoch)
    assert _rows([replay.rows(np.arange(len(replay)))]) == _rows(epoch)
    drawn = replay.sample(64, np.random.default_rng(5))
    assert set(_rows([drawn])) <= set(_rows(epoch))
    again = replay.sample(64, np.random.default_rng(5))
    _assert_batches_equal([drawn], [again])


def test_a_replay_without_rows_says_so(tmp_path):
    from rlstore.store import Store
    from tests.helpers import publish_episodes

    store = Store(tmp_path / "store")
    publish_episodes(store, "short", [vector_episode(1, seed=0, terminal=False)])
    with pytest.raises(ValueError, match="short@1 has no rows to sample"):
        np_reading.Replay.transitions(store, "short")
    assert len(np_reading.Replay.sequences(store, "short", length=2, period=1)) == 1


def test_same_seed_same_batches_another_seed_or_epoch_another_order(framework_store):
    store, _ = framework_store

    def first(seed, epoch=0):
        return next(np_reading.transitions(store, "vec", batch_size=8, seed=seed, epoch=epoch))["observation"]

    np.testing.assert_array_equal(first(5), first(5))
    assert not np.array_equal(first(5), first(6))
    assert not np.array_equal(first(5), first(5, epoch=1))
    repeated = np_reading.steps(store, "vec", batch_size=16, seed=2)
    assert all(len(next(repeated)["reward"]) == 16 for _ in range(20))  # runs on across epochs, full batches


def test_shares_split_an_epoch_without_overlap(framework_store):
    store, _ = framework_store
    whole = _rows(np_reading.transitions(store, "vec", batch_size=8, repeat=False))
    parts = [_rows(np_reading.transitions(store, "vec", batch_size=8, repeat=False, share=Share(i, 3)))
             for i in range(3)]
    assert all(parts) and sorted(sum(parts, [])) == whole
    ids = [[int(e["episode_id"]) for e in np_reading.episodes(store, "vec", share=Share(i, 2))] for i in range(2)]
    assert sorted(ids[0] + ids[1]) == list(range(10)) and not set(ids[0]) & set(ids[1])


def test_a_corrupt_shard_is_named(framework_store, tmp_path):
    store, _ = framework_store
    shard = store.shard_paths("vec@1")[0]
    data = bytearray(shard.read_bytes())
    data[40] ^= 0xFF
    copy = tmp_path / shard.name
    copy.write_bytes(bytes(data))
    from rlstore.numpy.records import Share as _Share, file_records

    with pytest.raises(StoreError, match=f"{copy}.*corrupt record"):
        list(file_records(copy, 0, _Share()))


_NO_TF = """
import json, sys
import numpy as np
from rlstore.store import Store
from rlstore.numpy import transitions, episodes
rows = sum(len(b["reward"]) for b in transitions(Store(sys.argv[1]), "vec", n_step=3, repeat=False))
pixels = [e["steps"]["observation"]["pixels"].shape[0] for e in episodes(Store(sys.argv[1]), "rich")]
print(json.dumps({"rows": rows, "frames": sum(pixels), "tf": [m for m in sys.modules if m.startswith("tensorflow")]}))
"""


def test_reading_never_imports_tensorflow(framework_store):
    store, _ = framework_store
    result = subprocess.run([sys.executable, "-c", _NO_TF, str(store.root)], capture_output=True, text=True,
                            check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"rows": 85, "frames": 3 + 4 + 5 + 6, "tf": []}
