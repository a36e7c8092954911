"""The dqn_replay source on checkpoints written by Dopamine's own replay buffer from real ALE frames."""
import gzip
import io
import pickle
import shutil
from collections import Counter

import numpy as np
import pytest

from rlstore.cli import main
from rlstore.frames import episode_firsts, stack
from rlstore.pipelines.sources.dqn_replay import DqnReplayFormat, read_pickled_int
from rlstore.store import Store
from tests.dopamine_fixtures import CAPACITIES, STACK
from tests.format_fixtures import stock_read
from tests.helpers import assert_epochs

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _read(directory, **options):
    source = DqnReplayFormat(**options)
    return [(item["checkpoint"], where, episode) for item in source.work_items([directory])
            for where, episode in source.read(item)]


def test_rows_become_rlds_episodes_with_one_final_step_rule(dopamine_run):
    played = dopamine_run.episodes
    episodes = _read(dopamine_run.directory)
    assert [(c, w.episode) for c, w, _ in episodes] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert all("ckpt.%d.gz" % c in w.file for c, w, _ in episodes)
    terminal, cut, running = (e for c, _, e in episodes if c == 0)
    # a terminal row keeps its action and reward; an all-zero frame follows it as the final step
    steps = terminal["steps"]
    assert np.array_equal(steps["observation"][:-1], played[0]["frames"]) and not steps["observation"][-1].any()
    assert np.array_equal(steps["action"][:-1], played[0]["actions"])
    assert np.array_equal(steps["reward"][:-1], played[0]["rewards"])
    assert steps["is_terminal"][-1] and steps["discount"][-2] == 0 and steps["discount"][:-2].all()
    # a cut's last row is its final observation: no next frame exists, so its action is not a transition
    for episode, source in ((cut, played[1]), (running, played[2])):
        steps = episode["steps"]
        assert np.array_equal(steps["observation"], source["frames"])
        assert np.array_equal(steps["action"][:-1], source["actions"][:-1]) and steps["action"][-1] == 0
        assert not steps["is_terminal"].any() and steps["discount"][-2] == 1.0
    assert [n["kind"] for n in running["_rlstore_notes"]] == ["truncated_final_episode"]
    assert "_rlstore_notes" not in cut and not terminal["starts_mid_episode"]


def test_wrapped_buffer_starts_mid_episode_and_needs_no_episode_end_indices(dopamine_run):
    played = dopamine_run.episodes
    assert not (dopamine_run.directory / "episode_end_indices_ckpt.1.gz").exists()
    head, cut, running = (e for c, _, e in _read(dopamine_run.directory) if c == 1)
    add_count = sum(len(e["actions"]) + STACK - 1 for e in played)
    lost = add_count - CAPACITIES[1] - (STACK - 1)  # rows of the first episode overwritten by the wrap
    assert head["starts_mid_episode"] and lost > 0
    assert np.array_equal(head["steps"]["observation"][:-1], played[0]["frames"][lost:])
    assert np.array_equal(cut["steps"]["observation"], played[1]["frames"])
    assert np.array_equal(running["steps"]["observation"], played[2]["frames"])


def _transition_key(observation, action, reward, next_observation, terminal):
    return (observation.tobytes(), int(action), float(reward), next_observation.tobytes(), bool(terminal))


def test_one_version_stock_tfds_sees_frames_readers_rebuild_dopamines_stacks(dopamine_store, dopamine_run):
    from rlstore.reading import sequences, transitions
    from rlstore.reading.transforms import stacked_gather

    manifest = dopamine_store.manifest("atari")
    assert manifest.version == 1 and manifest.num_episodes == 6
    spec = manifest.schema.steps["observation"]
    # the default for frames: raw in parquet shards, an episode's frames zstd-compressed together
    assert (spec.shape, spec.encoding, spec.stack) == ((84, 84), "bytes", STACK)
    assert [segment["shard_format"] for segment in manifest.segments] == ["parquet"]
    expected = {_frames_key(e["steps"]["observation"]) for _, _, e in _read(dopamine_run.directory)}
    stock = stock_read(dopamine_store.segment_dirs("atari"))
    assert {_frames_key(e["steps"]["observation"]) for e in stock} == expected

    # every transition Dopamine's sampler can draw is one the reader makes, stacks and all. The
    # reader also has the wrapped episode's first STACK rows, which Dopamine's invalid_range skips
    # near the cursor: STACK-1 with zero-padded stacks (their history was overwritten), and one whole
    ours = Counter()
    for batch in transitions(dopamine_store, "atari", n_step=1, batch_size=256, shuffle=False, repeat=False):
        rows = {k: v.numpy() for k, v in batch.items()}
        for i in range(len(rows["action"])):
            ours[_transition_key(rows["observation"][i], rows["action"][i], rows["reward"][i],
                                 rows["next_observation"][i], rows["discount"][i] == 0)] += 1
    theirs = Counter()
    for buffer in dopamine_run.buffers:
        frames = buffer._store["observation"]
        valid = [i for i in range(buffer._replay_capacity) if buffer.is_valid_transition(i) and frames[i].any()]
        state, action, reward, next_state, _, _, terminal, _ = buffer.sample_transition_batch(len(valid), np.array(valid))
        for i in range(len(valid)):
            theirs[_transition_key(state[i], action[i], reward[i], next_state[i], terminal[i])] += 1
    assert not theirs - ours
    assert sum((ours - theirs).values()) == STACK

    # the numpy definition and the tf.data gather agree; sequences carry the same stacks
    episode = stock[0]["steps"]
    every = np.arange(len(episode["is_first"]))
    expected_stacks = stack(episode["observation"], episode_firsts(episode["is_first"]), every, STACK)
    assert np.array_equal(stacked_gather(episode["observation"], episode, every, STACK).numpy(), expected_stacks)
    batch = next(iter(sequences(dopamine_store, "atari", length=8, period=8, batch_size=4, shuffle=False)))
    assert batch["observation"].shape == (4, 8, 84, 84, STACK)
    for i in range(4):  # the first episode's sequences from steps 0, 8, 16, 24
        assert np.array_equal(batch["observation"][i].numpy(), expected_stacks[8 * i:8 * i + 8])


def _frames_key(frames):
    return np.asarray(frames).tobytes()


def test_pickled_integers_are_read_without_unpickling():
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        for value in (0, 7, 255, 256, 65535, 65536, -3, 2**31, 2**70, -2**70):
            assert read_pickled_int(pickle.dumps(value, protocol=protocol)) == value
    for other in ("7", 7.0, True, {7}, [7], np.int64(7)):
        with pytest.raises(ValueError, match="something other than an integer|bool"):
            read_pickled_int(pickle.dumps(other))


def _checkpoint_zero(tmp_path, dopamine_run):
    directory = tmp_path / "replay"
    directory.mkdir()
    for path in dopamine_run.directory.glob("*_ckpt.0.gz"):
        shutil.copy(path, directory)
    return directory


def _gzip(path, data):
    with gzip.open(path, "wb") as stream:
        stream.write(data)


def _npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _break_missing(d):
    (d / "$store$_reward_ckpt.0.gz").unlink()
    return d / "$store$_reward_ckpt.0.gz", "missing its $store$_reward file"


def _break_lengths(d):
    actions = np.load(io.BytesIO(gzip.open(d / "$store$_action_ckpt.0.gz").read()))
    _gzip(d / "$store$_action_ckpt.0.gz", _npy(actions[:-5]))
    return d / "$store$_action_ckpt.0.gz", "unequal length"


def _break_gzip(d):
    path = d / "$store$_observation_ckpt.0.gz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path, "truncated .gz"


def _break_pickle(d):
    _gzip(d / "add_count_ckpt.0.gz", pickle.dumps({"add_count": 3}))
    return d / "add_count_ckpt.0.gz", "something other than an integer"


def _break_shape(d):
    frames = np.load(io.BytesIO(gzip.open(d / "$store$_observation_ckpt.0.gz").read()))
    _gzip(d / "$store$_observation_ckpt.0.gz", _npy(np.repeat(frames[..., None], STACK, axis=-1)))
    return d / "$store$_observation_ckpt.0.gz", "single uint8 [H, W] frames"


@pytest.mark.parametrize("damage", [_break_missing, _break_lengths, _break_gzip, _break_pickle, _break_shape])
def test_bad_checkpoints_give_one_line_and_publish_nothing(capsys, tmp_path, dopamine_run, damage):
    path, reason = damage(_checkpoint_zero(tmp_path, dopamine_run))
    code = main(["--store", str(tmp_path / "store"), "ingest", "--dataset", "ds", str(path.parent)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"file {path}" in err and reason in err, err
    assert "ckpt.0" in err
    assert Store(tmp_path / "store").versions("ds") == []


def test_a_wrong_frame_stack_is_caught_at_the_padding(capsys, tmp_path, dopamine_run):
    directory = _checkpoint_zero(tmp_path, dopamine_run)
    code = main(["--store", str(tmp_path / "store"), "ingest", "--dataset", "ds", "--frame-stack", "2", str(directory)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "expected Dopamine's 1 all-zero padding rows" in err and "found 3" in err, err


def _stacked_npz(directory, frames, name="e.npz"):
    """An npz episode whose observations are Dopamine-style stacks of `frames`."""
    firsts = np.zeros(len(frames), np.int64)
    stacks = stack(frames, firsts, np.arange(len(frames)), STACK)
    length = len(frames)
    np.savez(directory / name, observation=stacks, action=np.arange(length) % 4, reward=np.ones(length, np.float32),
             discount=np.ones(length, np.float32), is_terminal=np.bool_(False))
    return stacks


@pytest.mark.parametrize("shard_format, encoding", [(None, "bytes"), ("tfrecord", "zlib")])
def test_frame_stack_option_stores_npz_stacks_once(tmp_path, dopamine_run, shard_format, encoding):
    from rlstore.pipelines.ingest import ingest
    from rlstore.reading import steps

    logs = tmp_path / "logs"
    logs.mkdir()
    stacks = _stacked_npz(logs, dopamine_run.episodes[1]["frames"][:20])
    store = Store(tmp_path / "store")
    manifest = ingest(store, "stacked", [str(logs)], format_options={"frame_stack": STACK}, shard_format=shard_format,
                      beam_args=["--direct_num_workers=1", "--direct_running_mode=in_memory"])
    spec = manifest.schema.steps["observation"]
    assert (spec.shape, spec.encoding, spec.stack) == ((84, 84), encoding, STACK)
    assert manifest.segments[0].get("shard_format", "tfrecord") == (shard_format or "parquet")
    [stored] = stock_read(store.segment_dirs("stacked"))
    assert np.array_equal(stored["steps"]["observation"], stacks[..., -1])
    [batch] = steps(store, "stacked", batch_size=20, shuffle=False, repeat=False)
    assert np.array_equal(batch["observation"].numpy(), stacks)


def test_observations_that_are_not_stacks_are_refused(capsys, tmp_path, dopamine_run):
    logs = tmp_path / "logs"
    logs.mkdir()
    frames = dopamine_run.episodes[1]["frames"][:10]
    stacks = _stacked_npz(logs, frames)
    stacks[6, ..., 0] = frames[9]  # step 6's oldest frame is not step 5's second
    np.savez(logs / "e.npz", **{**np.load(logs / "e.npz"), "observation": stacks})
    code = main(["--store", str(tmp_path / "store"), "ingest", "--dataset", "ds", "--frame-stack", str(STACK), str(logs)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1, err
    assert f"file {logs / 'e.npz'}" in err and "step 6" in err and "steps/observation" in err, err
    assert "not the previous step's stack shifted by one frame" in err


@pytest.mark.parametrize("k", [2, 3, 4, 8])  # 2, 4, 8: packed into words; 3: transposed
def test_tf_stacks_equal_the_numpy_definition(k):
    from rlstore.reading.transforms import stacked_gather

    rng = np.random.default_rng(k)
    frames = rng.integers(1, 256, size=(19, 5, 3), dtype=np.uint8)
    is_first = np.isin(np.arange(19), [0, 4, 5])  # episodes of 4, 1 and 14 steps
    is_last = np.isin(np.arange(19), [3, 4, 18])
    indices = rng.permutation(19)  # 19 stacks: XLA's input padded to a bucket of 20, the extra one cut off
    expected = stack(frames, episode_firsts(is_first), indices, k)
    actual = stacked_gather(frames, {"is_first": is_first, "is_last": is_last}, indices, k).numpy()
    assert actual.shape == (19, 5, 3, k) and np.array_equal(actual, expected)
    assert not expected[indices.tolist().index(4)][..., :-1].any()  # a one-step episode: all padding


@pytest.mark.parametrize("kept", ["memory", "disk", None])
def test_repeated_epochs_of_stacked_transitions_equal_the_first_kept_decoded_or_not(dopamine_store, kept, tmp_path,
                                                                                   monkeypatch):
    """With `repeat`, a frame-stacked version is decoded once and its chunks kept in RAM, spilled
    to temp files (`decoded_cache_bytes=0`), or decoded every epoch (both budgets 0): every
    epoch holds each transition of the version once, stacks and all (batches of 1 drop
    nothing), later epochs come in a new order, and the spilled files go with the reader."""
    import gc
    import tempfile

    from rlstore.reading import decoded_cache, transitions

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    manifest = dopamine_store.manifest("atari")
    budgets = {"memory": {}, "disk": {"decoded_cache_bytes": 0},
               None: {"decoded_cache_bytes": 0, "decoded_disk_bytes": 0}}[kept]
    assert decoded_cache.placement(manifest, 2, budgets.get("decoded_cache_bytes", decoded_cache.RAM_BYTES),
                                   budgets.get("decoded_disk_bytes", decoded_cache.DISK_BYTES)) == kept

    def keys(batch):
        return [_transition_key(*(batch[field][i] for field in ("observation", "action", "reward", "next_observation")),
                                batch["discount"][i] == 0) for i in range(len(batch["action"]))]

    expected = Counter(key for batch in transitions(dopamine_store, "atari", n_step=1, batch_size=64, shuffle=False,
                                                    repeat=False).as_numpy_iterator() for key in keys(batch))
    size = sum(expected.values())
    batches = transitions(dopamine_store, "atari", n_step=1, batch_size=1, seed=5, chunk_episodes=2, **budgets)
    order = [key for batch in batches.take(3 * size).as_numpy_iterator() for key in keys(batch)]
    assert_epochs(order, expected, 3)
    assert len(list(tmp_path.glob("rlstore-decoded-*"))) == (kept == "disk")
    del batches
    gc.collect()
    assert not list(tmp_path.glob("rlstore-decoded-*"))


def test_stacks_gathered_for_several_batches_at_once_cut_the_same_batches(dopamine_store, monkeypatch):
    """Frame stacks are built for a group of batches per gather and then cut into batches. An
    epoch read once: the same batches in the same order, each chunk's short last batch its own
    (a batch size that divides no chunk). Repeating: the same batches with the same static
    shape; a group is handed on whole, so two chunks' batches alternate by the group."""
    from rlstore.reading import readers

    group_of_4 = 4 * 24 * 2 * 84 * 84 * STACK  # transitions: 2 stacks a row

    def read(group_bytes, **options):
        monkeypatch.setattr(readers, "STACK_GROUP_BYTES", group_bytes)
        return readers.transitions(dopamine_store, "atari", n_step=3, batch_size=24, seed=3, **options)

    def batch_keys(batches):
        return [b"".join(np.ascontiguousarray(batch[key]).tobytes() for key in sorted(batch)) for batch in batches]

    once = [batch_keys(read(group_bytes, chunk_episodes=2, repeat=False).as_numpy_iterator())
            for group_bytes in (0, group_of_4)]
    assert once[0] == once[1] and len(set(once[0])) == len(once[0])
    assert sum(len(key) for key in once[0]) < len(once[0]) * len(once[0][0])  # some batches are short

    # one chunk an epoch: the first two epochs' chunks, interleaved by the batch or by the group
    manifest = dopamine_store.manifest("atari")
    per_chunk = (manifest.num_steps - manifest.num_episodes) // 24  # whole batches of transitions
    repeated = [read(group_bytes, chunk_episodes=6) for group_bytes in (0, group_of_4)]
    assert repeated[0].element_spec == repeated[1].element_spec
    assert repeated[1].element_spec["observation"].shape == (24, 84, 84, STACK)
    epochs = [batch_keys(batches.take(2 * per_chunk).as_numpy_iterator()) for batches in repeated]
    assert epochs[0] != epochs[1] and sorted(epochs[0]) == sorted(epochs[1])


def test_a_spilled_chunk_whose_file_is_gone_is_an_error_naming_it(dopamine_store, tmp_path, monkeypatch):
    """Later epochs read spilled chunks back from their files; one deleted under a live reader
    (a temp-dir cleaner, say) stops it with an error naming the file, rather than an epoch
    quietly served without that chunk."""
    import tempfile

    import tensorflow as tf

    from rlstore.reading import transitions

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    size = dopamine_store.manifest("atari").num_steps  # more than one epoch of transitions
    batches = iter(transitions(dopamine_store, "atari", n_step=1, batch_size=1, seed=5, chunk_episodes=2,
                               decoded_cache_bytes=0))
    for _ in range(size):
        next(batches)
    spilled = list(tmp_path.glob("rlstore-decoded-*/*"))
    assert spilled
    for path in spilled:
        path.unlink()
    with pytest.raises(tf.errors.UnknownError, match="a decoded chunk's file is gone: .*rlstore-decoded-"):
        for _ in range(10 * size):  # tf.data may have read a few chunks ahead before the files went
            next(batches)
