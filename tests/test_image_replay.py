"""Serving a frame-stacked version (Atari frames stored once) through Reverb: transition and
sequence items reference each frame once on the server, and sampled stacks equal the stacks
`rlstore.reading` rebuilds, Dopamine's zero padding at episode starts included."""
from __future__ import annotations

import numpy as np
import reverb

from rlstore.reading import transitions
from rlstore.replay import Layout, ReplayServer, sample_dataset
from rlstore.replay.tables import FRAMES_NAME

SAMPLES = 24  # batches of 64 drawn from ~600 items: every item is drawn ~2.5 times on average


def _key(rows: dict, index: int) -> tuple:
    return tuple(np.asarray(rows[field])[index].tobytes() for field in sorted(rows))


def reader_items(store, ref: str, n_step: int = 3) -> set[tuple]:
    """Every transitions item with 1-step targets (a DQfD table's), made from the readers' rows."""
    want = set()
    one = transitions(store, ref, n_step=1, batch_size=256, shuffle=False, repeat=False)
    many = transitions(store, ref, n_step=n_step, batch_size=256, shuffle=False, repeat=False)
    for rows, one_rows in zip(many.as_numpy_iterator(), one.as_numpy_iterator()):
        rows = {**rows, "one_step_reward": one_rows["reward"], "one_step_discount": one_rows["discount"],
                "one_step_next_observation": one_rows["next_observation"]}
        want.update(_key(rows, index) for index in range(len(rows["action"])))
    return want


def test_sampled_stacks_equal_the_readers_stacks(dopamine_store):
    layout = Layout(tables=("transitions",), n_step=3, one_step=True)
    want = reader_items(dopamine_store, "atari")
    manifest = dopamine_store.manifest("atari")
    with ReplayServer(dopamine_store, "atari", layout) as server:
        info = reverb.Client(server.address).server_info()["transitions"]
        assert info.current_size == manifest.num_steps - manifest.num_episodes
        assert info.signature["observation"].shape == (4, 84, 84) and info.signature["observation"].name == FRAMES_NAME
        padded = 0
        for sample in sample_dataset(server.address, "transitions", 64).take(SAMPLES):
            data = {field: value.numpy() for field, value in sample.data.items()}
            assert data["observation"].shape == (64, 84, 84, 4)
            for index in range(64):
                assert _key(data, index) in want
            padded += int((~data["observation"][..., :3].any(axis=(1, 2, 3))).sum())  # episode starts
        assert padded > 0


def test_sampled_sequences_of_stacks_equal_the_readers_sequences(dopamine_store):
    """R2D3 on images: sequence items whose stacks reference the frames stored once equal, byte
    for byte, the windows `rlstore.reading.sequences` rebuilds, burn-in, the zero padding past an
    episode's end (mask 0) and the zero frames before its start included."""
    from rlstore.reading import sequences
    from rlstore.replay.tables import FRAME_WINDOWS_NAME

    layout = Layout(tables=("sequences",), sequence_length=10, sequence_period=5, burn_in=2)
    want, count = set(), 0  # the two checkpoints hold some episodes twice: `count` has every window
    for rows in sequences(dopamine_store, "atari", length=10, period=5, burn_in=2, batch_size=64, shuffle=False,
                          repeat=False).as_numpy_iterator():
        want.update(_key(rows, index) for index in range(len(rows["mask"])))
        count += len(rows["mask"])
    with ReplayServer(dopamine_store, "atari", layout) as server:
        info = reverb.Client(server.address).server_info()["sequences"]
        assert info.current_size == count
        held = info.signature["observation"]  # one column per stack slot, frames referenced
        assert [(spec.shape, spec.name) for spec in held] == [((12, 84, 84), FRAME_WINDOWS_NAME)] * 4
        padded_end = padded_start = 0
        for sample in sample_dataset(server.address, "sequences", 32).take(SAMPLES):
            data = {field: value.numpy() for field, value in sample.data.items()}
            assert data["observation"].shape == (32, 12, 84, 84, 4)
            for index in range(32):
                assert _key(data, index) in want
            padded_end += int((data["mask"] == 0).any(axis=1).sum())
            padded_start += int((data["is_first"][:, 0] & ~data["observation"][:, 0, ..., :3].any(axis=(1, 2, 3))).sum())
        assert padded_end > 0 and padded_start > 0
