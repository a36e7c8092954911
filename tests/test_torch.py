"""rlstore.torch: DataLoader epochs over a real store version equal the tf.data readers' epochs,
in a process that never imports TensorFlow."""
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from rlstore import reading
from rlstore.nest import flatten
from tests.helpers import frames_store

_READ = """
import sys
import numpy as np
import torch
from torch.utils.data import DataLoader
from rlstore.torch import EpisodeDataset, SequenceDataset, TransitionDataset, TransitionReplay

root, out, frames_root = sys.argv[1], sys.argv[2], sys.argv[3]
arrays = {}


def what_collate_sees(batch):  # runs in the worker, on each batch the dataset yields
    return isinstance(batch, dict), sorted(type(v).__name__ for v in batch.values()), batch["reward"] * 2


transitions = TransitionDataset(root, "vec", n_step=3, gamma=0.9, batch_size=8, seed=4)
for epoch in range(2):
    transitions.set_epoch(epoch)
    for number, batch in enumerate(DataLoader(transitions, batch_size=None, num_workers=2)):
        assert all(isinstance(v, torch.Tensor) for v in batch.values())
        for key, value in batch.items():
            arrays[f"t{epoch}/{number}/{key}"] = value.numpy()
persistent = DataLoader(TransitionDataset(root, "vec", batch_size=8, seed=4), batch_size=None, num_workers=2,
                        persistent_workers=True)
for epoch in range(2):  # kept workers move on to the next epoch by themselves
    for number, batch in enumerate(persistent):
        arrays[f"p{epoch}/{number}/observation"] = batch["observation"].numpy()
sequences = SequenceDataset(root, "vec", length=3, period=2, burn_in=1, batch_size=4)
for number, batch in enumerate(DataLoader(sequences, batch_size=None, num_workers=2)):
    for key in ("observation", "mask"):
        arrays[f"s/{number}/{key}"] = batch[key].numpy()
stacked = {"fT": TransitionDataset(frames_root, "frames", n_step=2, batch_size=4, seed=1, chunk_episodes=2),
           "fS": SequenceDataset(frames_root, "frames", length=3, period=2, burn_in=1, batch_size=2, chunk_episodes=2)}
for prefix, data in stacked.items():
    for number, batch in enumerate(DataLoader(data, batch_size=None, num_workers=2)):
        for key, value in batch.items():
            arrays[f"{prefix}/{number}/{key}"] = value.numpy()
replay = TransitionReplay(frames_root, "frames", n_step=2, batch_size=4, seed=3, batches=7)
for number, batch in enumerate(DataLoader(replay, batch_size=None, num_workers=2)):
    for key, value in batch.items():
        arrays[f"r/{number}/{key}"] = value.numpy()
blocked = replay.loader(num_workers=2, block=3)  # blocks of 3, 1 batches from worker 0, 3 from worker 1
for number, batch in enumerate(blocked):
    for key, value in batch.items():
        arrays[f"b/{number}/{key}"] = value.numpy()  # views into the blocks, held to the end
# one batch a block, 1 + 2 slots a worker: worker 0's 4th block finds its slots all held (the
# blocks travel the ordinary way), and when every batch is copied and dropped the slots are reused
held = [batch for batch in replay.loader(num_workers=2, block=1, prefetch_factor=1)]
arrays.update({f"h/{n}/{key}": value.numpy() for n, batch in enumerate(held) for key, value in batch.items()})
for number, batch in enumerate(replay.loader(num_workers=2, block=1, prefetch_factor=1)):
    arrays.update({f"c/{number}/{key}": value.numpy().copy() for key, value in batch.items()})
for option in ("collate_fn", "batch_size"):
    try:
        replay.loader(**{option: None})
        raise AssertionError(f"loader took {option}")
    except TypeError as error:
        assert option in str(error)
arrays.update({f"r/{7 + n}/{key}": value.numpy() for n in range(2) for key, value in replay.sample(5).items()})
seen = list(DataLoader(TransitionDataset(root, "vec", batch_size=8), batch_size=None, num_workers=2,
                       collate_fn=what_collate_sees))
assert all(is_dict and set(types) == {"Tensor"} for is_dict, types, _ in seen), seen[0]
assert sum(len(doubled) for _, _, doubled in seen) == 85
for number, episode in enumerate(DataLoader(EpisodeDataset(root, "rich"), batch_size=None, num_workers=2)):
    arrays[f"e/{number}/pixels"] = episode["steps"]["observation"]["pixels"].numpy()
    arrays[f"e/{number}/id"] = episode["episode_id"].numpy()
assert not [m for m in sys.modules if m.startswith("tensorflow")], "TensorFlow was imported"
np.savez(out, **arrays)
"""


@pytest.fixture(scope="module")
def stacked_store(tmp_path_factory):
    return frames_store(tmp_path_factory.mktemp("frames"))


@pytest.fixture(scope="module")
def torch_read(framework_store, stacked_store, tmp_path_factory):
    """What the DataLoaders read in a process of their own (TF-free, checked there)."""
    store, _ = framework_store
    out = tmp_path_factory.mktemp("torch") / "read.npz"
    result = subprocess.run([sys.executable, "-c", _READ, str(store.root), str(out), str(stacked_store[0].root)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(out) as arrays:
        return {key: arrays[key] for key in arrays.files}


def _group(arrays, prefix):
    """{batch number: {field: array}} of one prefix, in batch order."""
    batches = {}
    for key, value in arrays.items():
        part, number, field = key.split("/", 2)
        if part == prefix:
            batches.setdefault(int(number), {})[field] = value
    return [batches[n] for n in sorted(batches)]


def _rows(batches, keys):
    return sorted(b"|".join(np.ascontiguousarray(batch[key][i]).tobytes() for key in keys)
                  for batch in batches for i in range(len(batch[keys[0]])))


def test_one_epoch_equals_an_epoch_of_the_tf_reader_as_a_multiset_of_rows(framework_store, torch_read):
    store, _ = framework_store
    theirs = [flatten(tf.nest.map_structure(lambda t: t.numpy(), batch))
              for batch in reading.transitions(store, "vec", n_step=3, gamma=0.9, batch_size=8, repeat=False)]
    keys = sorted(theirs[0])
    for epoch in (0, 1):
        mine = _group(torch_read, f"t{epoch}")
        assert sorted(mine[0]) == keys
        assert sum(len(b["reward"]) for b in mine) == 85
        assert _rows(mine, keys) == _rows(theirs, keys)
    first, second = (np.concatenate([b["observation"] for b in _group(torch_read, f"t{e}")]) for e in (0, 1))
    assert not np.array_equal(first, second)  # set_epoch reshuffles
    kept = [np.concatenate([b["observation"] for b in _group(torch_read, f"p{e}")]) for e in (0, 1)]
    assert all(len(epoch) == 85 for epoch in kept) and not np.array_equal(kept[0], kept[1])
    np.testing.assert_array_equal(kept[0], first)  # epoch 0 of the same seed, the same order


def test_sequences_and_episodes_each_come_once_across_workers(framework_store, torch_read):
    store, originals = framework_store
    theirs = [tf.nest.map_structure(lambda t: t.numpy(), batch)
              for batch in reading.sequences(store, "vec", length=3, period=2, burn_in=1, batch_size=4, repeat=False)]
    assert _rows(_group(torch_read, "s"), ["mask", "observation"]) == _rows(theirs, ["mask", "observation"])
    episodes = _group(torch_read, "e")
    assert sorted(int(e["id"]) for e in episodes) == [0, 1, 2, 3]
    for episode in episodes:
        original = originals["rich"][int(episode["id"])]["steps"]["observation"]["pixels"]
        np.testing.assert_array_equal(episode["pixels"], original)


def test_frame_stacks_are_rebuilt_as_the_tf_stacked_readers_rebuild_them(stacked_store, torch_read):
    store, episodes = stacked_store
    reads = {"fT": lambda m: m.transitions(store, "frames", n_step=2, batch_size=4, repeat=False),
             "fS": lambda m: m.sequences(store, "frames", length=3, period=2, burn_in=1, batch_size=2, repeat=False)}
    for prefix, read in reads.items():
        theirs = [flatten(tf.nest.map_structure(lambda t: t.numpy(), batch)) for batch in read(reading)]
        mine = _group(torch_read, prefix)
        keys = sorted(theirs[0])
        assert sorted(mine[0]) == keys and mine[0]["observation"].shape[-3:] == (6, 5, 3)
        assert _rows(mine, keys) == _rows(theirs, keys)
    steps = sum(len(episode["steps"]["reward"]) for episode in episodes)
    assert sum(len(b["reward"]) for b in _group(torch_read, "fT")) == steps - len(episodes)


def test_replay_batches_are_rows_of_the_version_drawn_in_every_worker(stacked_store, torch_read):
    store, _ = stacked_store
    theirs = [flatten(tf.nest.map_structure(lambda t: t.numpy(), batch))
              for batch in reading.transitions(store, "frames", n_step=2, batch_size=4, repeat=False)]
    keys = sorted(theirs[0])
    drawn = _group(torch_read, "r")
    assert [len(batch["reward"]) for batch in drawn] == [4] * 7 + [5, 5]  # `batches` across 2 workers, sample()
    assert set(_rows(drawn, keys)) <= set(_rows(theirs, keys))
    worker_0, worker_1 = drawn[0:7:2], drawn[1:7:2]  # the DataLoader alternates between its workers
    assert _rows(worker_0[:3], keys) != _rows(worker_1, keys)  # each worker draws its own rows
    # replay.loader(): per worker the same batches, handed off 3 at a time (workers alternate by block)
    for prefix, order in {"b": worker_0[:3] + worker_1 + worker_0[3:], "h": drawn[:7], "c": drawn[:7]}.items():
        blocked = _group(torch_read, prefix)
        assert len(blocked) == 7
        for mine, plain in zip(blocked, order):
            assert sorted(mine) == keys
            for key in keys:
                np.testing.assert_array_equal(mine[key], plain[key])


_LEARN = """
import sys
import torch
torch.set_num_threads(1)
sys.path.insert(0, sys.argv[2])
from torch_bc import train
from rlstore.numpy import steps
from rlstore.store import Store

store = Store(sys.argv[1])
policy = train(store, "separable", updates=150, batch_size=32, seed=0, workers=0)
batch = next(steps(store, "separable", batch_size=400, repeat=False, shuffle=False))
with torch.no_grad():
    guess = policy(torch.from_numpy(batch["observation"])).argmax(-1).numpy()
real = ~batch["is_last"]
print(float((guess[real] == batch["action"][real]).mean()))
"""


def test_the_torch_bc_example_learns_on_a_tiny_budget(tmp_path):
    """examples/torch_bc.py's training loop, 150 updates, on episodes whose action is the sign
    of the first observation: it must get nearly every action right."""
    from pathlib import Path

    from rlstore.store import Store
    from tests.helpers import make_episode, publish_episodes

    rng = np.random.default_rng(0)
    episodes = []
    for _ in range(8):
        observation = rng.normal(size=(50, 4)).astype(np.float32)
        action = (observation[:, 0] > 0).astype(np.int64)
        episodes.append(make_episode(observation, action, np.ones(50, np.float32), np.ones(50, np.float32),
                                     is_terminal=False))
    store = Store(tmp_path / "store")
    publish_episodes(store, "separable", episodes)
    examples = Path(__file__).resolve().parent.parent / "examples"
    result = subprocess.run([sys.executable, "-c", _LEARN, str(store.root), str(examples)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert float(result.stdout.strip().splitlines()[-1]) > 0.9
