"""Ingest finds frame stacks without `--frame-stack`: npz and RLDS sources whose observations are
Dopamine-style stacks (real ALE frames here) are stored one frame per step and read back as the
same stacks; observations that are not stacks (RGB cameras) are stored whole, untouched; a later
episode that breaks the detected stacking stops the ingest naming its step, and `--frame-stack 1`
stores whole."""
from __future__ import annotations

import numpy as np
import pytest

from rlstore.cli import main
from rlstore.episode import make_episode
from rlstore.frames import detect_stack, stack
from rlstore.store import Store
from tests.format_fixtures import stock_read
from tests.helpers import publish_episodes, write_npz_logs

K = 4
BEAM = ["--direct_num_workers=1", "--direct_running_mode=in_memory"]


@pytest.fixture(scope="module")
def pong_frames():
    """Three runs of real ALE Pong frames (84x84 uint8), 30, 25 and 20 agent steps."""
    from rlstore.envs.atari import random_play

    frames = np.stack([step.frame for step in random_play("Pong", 75, seed=5)])
    return [frames[:30], frames[30:55], frames[55:]]


def _episode(observation: np.ndarray):
    length = len(observation)
    return make_episode(observation=observation, action=(np.arange(length) % 6).astype(np.int32),
                        reward=np.zeros(length, np.float32), discount=np.ones(length, np.float32), is_terminal=False)


def _stacks(frames: np.ndarray) -> np.ndarray:
    return stack(frames, np.zeros(len(frames), np.int64), np.arange(len(frames)), K)


def _rgb(frames: np.ndarray) -> np.ndarray:
    """Camera-like RGB images [T, 84, 84, 3]: three real frames side by side as colour channels."""
    return np.stack([frames, frames[::-1], np.roll(frames, 1, axis=0)], axis=-1)


def _ingest(store: Store, name: str, paths, **options):
    from rlstore.pipelines.ingest import ingest

    return ingest(store, name, [str(p) for p in paths], beam_args=BEAM, **options)


def _same_episodes(store: Store, name: str, stacks: list[np.ndarray]) -> bool:
    """The stacks the readers rebuild, episode by episode (in any order), are `stacks`."""
    from rlstore.reading import steps

    [batch] = steps(store, name, batch_size=1000, shuffle=False, repeat=False)
    observation, first = batch["observation"].numpy(), np.flatnonzero(batch["is_first"].numpy())
    return sorted(e.tobytes() for e in np.split(observation, first[1:])) == sorted(s.tobytes() for s in stacks)


def test_detect_stack_needs_real_evidence(pong_frames):
    frames = pong_frames[0]
    assert detect_stack(_stacks(frames)) == K
    assert detect_stack(_stacks(frames)[..., 1:]) == K - 1  # the newest 3 slide just as well
    assert detect_stack(_stacks(frames)[K:]) is None  # a window from mid-episode: no zero padding at step 0
    assert detect_stack(_rgb(frames)) is None
    assert detect_stack(np.zeros((10, 84, 84, 3), np.uint8)) is None  # black: no evidence either way
    assert detect_stack(_stacks(frames)[:1]) is None  # one step shows no shift
    assert detect_stack(_stacks(frames).astype(np.float32)) is None
    assert detect_stack(frames) is None  # [T, 84, 84]: a last axis of 84 is a width, not a stack


def test_npz_stacks_are_detected_and_stored_once(tmp_path, pong_frames):
    stacks = [_stacks(frames) for frames in pong_frames]
    write_npz_logs(tmp_path / "logs", [_episode(s) for s in stacks])
    store = Store(tmp_path / "store")
    manifest = _ingest(store, "pong", [tmp_path / "logs"])
    spec = manifest.schema.steps["observation"]
    assert (spec.shape, spec.stack) == ((84, 84), K)
    assert manifest.segments[0]["shard_format"] == "parquet"
    assert manifest.lineage["run_metadata"]["frame_stack_detected"] is True
    assert manifest.lineage["options"]["format_options"]["frame_stack"] == K
    assert _same_episodes(store, "pong", stacks)
    stock = stock_read(store.segment_dirs("pong"))
    assert sorted(e["steps"]["observation"].tobytes() for e in stock) == sorted(f.tobytes() for f in pong_frames)


def test_rgb_observations_are_stored_whole(tmp_path, pong_frames):
    cameras = [_rgb(frames) for frames in pong_frames]
    write_npz_logs(tmp_path / "logs", [_episode(c) for c in cameras])
    store = Store(tmp_path / "store")
    manifest = _ingest(store, "cams", [tmp_path / "logs"])
    spec = manifest.schema.steps["observation"]
    assert (spec.shape, spec.stack, spec.encoding) == ((84, 84, 3), 1, "png")
    assert "frame_stack" not in manifest.lineage["options"]["format_options"]
    stock = stock_read(store.segment_dirs("cams"))
    assert sorted(e["steps"]["observation"].tobytes() for e in stock) == sorted(c.tobytes() for c in cameras)


def test_an_episode_that_breaks_the_detected_stacks_is_refused_and_frame_stack_1_stores_whole(
        tmp_path, capsys, pong_frames):
    stacks = _stacks(pong_frames[0])
    broken = _stacks(pong_frames[1])
    broken[7, ..., 0] = pong_frames[2][0]  # step 7's oldest frame is not step 6's second
    paths = write_npz_logs(tmp_path / "logs", [_episode(stacks), _episode(broken)])
    root = tmp_path / "store"
    code = main(["--store", str(root), "ingest", "--dataset", "ds", str(tmp_path / "logs")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"file {paths[1]}" in err and "step 7" in err and "steps/observation" in err, err
    assert "stacks of 4 frames were detected in the first episode; --frame-stack 1 stores observations whole" in err
    assert Store(root).versions("ds") == []

    assert main(["--store", str(root), "ingest", "--dataset", "ds", "--frame-stack", "1", str(tmp_path / "logs")]) == 0
    manifest = Store(root).manifest("ds")
    assert (manifest.schema.steps["observation"].shape, manifest.schema.steps["observation"].stack) == ((84, 84, 4), 1)
    stock = stock_read(Store(root).segment_dirs("ds"))
    assert sorted(e["steps"]["observation"].tobytes() for e in stock) == sorted([stacks.tobytes(), broken.tobytes()])


def test_rlds_png_stacks_are_detected_and_rgb_pngs_kept_as_they_came(tmp_path, pong_frames):
    """An RLDS source holding stacks as 4-channel PNGs (rlstore's own layout before frames were
    stored once) becomes frames stored once; one holding RGB PNG cameras keeps its bytes."""
    source = Store(tmp_path / "source")
    stacks = [_stacks(frames) for frames in pong_frames]
    publish_episodes(source, "old_pong", [_episode(s) for s in stacks])
    assert source.manifest("old_pong").schema.steps["observation"].encoding == "png"
    cameras = [_rgb(frames) for frames in pong_frames]
    publish_episodes(source, "cams", [_episode(c) for c in cameras])

    store = Store(tmp_path / "store")
    manifest = _ingest(store, "pong", source.segment_dirs("old_pong"))
    spec = manifest.schema.steps["observation"]
    assert (manifest.lineage["format"], spec.shape, spec.stack) == ("rlds", (84, 84), K)
    assert _same_episodes(store, "pong", stacks)

    manifest = _ingest(store, "cams", source.segment_dirs("cams"))
    spec = manifest.schema.steps["observation"]
    assert (spec.shape, spec.stack, spec.encoding) == ((84, 84, 3), 1, "png")
    kept = sorted(_png_bytes(store.segment_dirs("cams")))
    assert kept == sorted(_png_bytes(source.segment_dirs("cams")))  # bit-identical, never re-encoded


def _png_bytes(segments) -> list[bytes]:
    import tensorflow_datasets as tfds

    builder = tfds.builder_from_directories([str(s) for s in segments])
    decoders = {"steps": {"observation": tfds.decode.SkipDecoding()}}
    return [image for episode in builder.as_dataset(split="train", decoders=decoders)
            for image in episode["steps"].batch(1000).get_single_element()["observation"].numpy().tolist()]
