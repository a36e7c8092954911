"""Robot camera data kept as it came: JPEG bytes stored bit-identical, a chosen encoding for raw
images, language and embeddings, splits, and JPEGs that do not decode found by `validate`.

The sources are RLDS datasets written by TFDS itself (tests/camera_fixtures.py)."""
from __future__ import annotations

import json

from collections import Counter

import numpy as np
import pytest

from rlstore.cli import main
from rlstore.pipelines.ingest import ingest
from rlstore.store import Store
from rlstore.validation import validate
from tests import camera_fixtures as cf
from tests.helpers import assert_epochs, write_npz_logs

BEAM = ["--direct_num_workers=1", "--direct_running_mode=in_memory"]
FIELDS = [f"observation/{camera}" for camera in cf.CAMERAS]


@pytest.fixture(scope="module")
def camera_source(tmp_path_factory):
    return cf.write_camera_dataset(tmp_path_factory.mktemp("cameras"))


@pytest.fixture(scope="module")
def camera_store(tmp_path_factory, camera_source):
    directory, _ = camera_source
    store = Store(tmp_path_factory.mktemp("camera_store"))
    ingest(store, "cams", [str(directory)], beam_args=BEAM)
    return store


def _stock_episodes(store: Store, name: str) -> dict[int, dict]:
    """Episode id -> episode of every split, through stock TFDS only."""
    import tensorflow_datasets as tfds

    builder = tfds.builder_from_directories([str(p) for p in store.segment_dirs(name)])
    episodes = {}
    for split in builder.info.splits:
        for episode in builder.as_dataset(split=split):
            steps = tfds.as_numpy(episode["steps"].batch(1000).get_single_element())
            metadata = episode["episode_metadata"] if "episode_metadata" in episode else episode
            episodes[int(metadata["episode_id"])] = {**tfds.as_numpy(episode), "steps": steps}
    return episodes


def test_jpeg_bytes_are_stored_bit_identical(camera_source, camera_store):
    directory, splits = camera_source
    schema = camera_store.manifest("cams").schema
    for field in FIELDS:
        assert schema.steps[field].encoding == "jpeg" and schema.steps[field].shape == (cf.SIZE, cf.SIZE, 3)
        source = cf.stored_images(sorted(directory.glob("*.tfrecord-*")), field)
        stored = cf.stored_images(camera_store.shard_paths("cams"), field)
        assert len(source) == sum(len(e) for e in splits.values()) and stored == source, field
    written = {int(e["episode_metadata"]["episode_id"]): e for episodes in splits.values() for e in episodes}
    assert stored == {i: e["steps"]["observation"][cf.CAMERAS[-1]] for i, e in written.items()}
    for segment in camera_store.segment_dirs("cams"):
        features = json.loads((segment / "features.json").read_text())
        assert json.dumps(features).count('"encodingFormat": "jpeg"') == 2, features


def test_splits_survive_ingest(capsys, camera_source, camera_store):
    import tensorflow_datasets as tfds

    _, splits = camera_source
    counts = {split: len(episodes) for split, episodes in splits.items()}
    builder = tfds.builder_from_directories([str(p) for p in camera_store.segment_dirs("cams")])
    assert {name: info.num_examples for name, info in builder.info.splits.items()} == counts
    for split, episodes in splits.items():
        ids = sorted(int(e["episode_metadata"]["episode_id"]) for e in builder.as_dataset(split=split))
        assert ids == sorted(int(e["episode_metadata"]["episode_id"]) for e in episodes), split
    assert main(["--store", str(camera_store.root), "info", "cams", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {name: n["num_episodes"] for name, n in info["splits"].items()} == counts
    assert list(info["splits"]) == ["train", "val"]
    assert main(["--store", str(camera_store.root), "info", "cams"]) == 0
    assert "splits    train 3 episodes (12 steps), val 2 episodes (6 steps)" in capsys.readouterr().out
    assert sum(1 for _ in camera_store.load("cams")) == 5
    assert sum(1 for _ in camera_store.load("cams", split="val")) == 2


def test_cameras_language_and_embeddings_read_back(camera_source, camera_store):
    import tensorflow as tf

    _, splits = camera_source
    stock = _stock_episodes(camera_store, "cams")
    for episodes in splits.values():
        for episode in episodes:
            got = stock[int(episode["episode_metadata"]["episode_id"])]
            steps = episode["steps"]
            assert [t.decode() for t in got["steps"]["language_instruction"]] == steps["language_instruction"]
            np.testing.assert_array_equal(got["steps"]["language_embedding"], steps["language_embedding"])
            assert got["episode_metadata"]["file_path"].decode() == episode["episode_metadata"]["file_path"]
            for camera in cf.CAMERAS:
                decoded = np.stack([tf.io.decode_jpeg(b).numpy() for b in steps["observation"][camera]])
                np.testing.assert_array_equal(got["steps"]["observation"][camera], decoded)
    from rlstore import reading

    read = {int(e["episode_metadata"]["episode_id"]): e
            for e in reading.episodes(camera_store, "cams", shuffle=False).as_numpy_iterator()}
    for episode_id, episode in read.items():
        for camera in cf.CAMERAS:
            np.testing.assert_array_equal(episode["steps"]["observation"][camera],
                                          stock[episode_id]["steps"]["observation"][camera])


WINDOWS = {"length": 3, "burn_in": 1, "period": 2}


@pytest.fixture(scope="module")
def stock_windows(camera_store) -> dict[bytes, tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Every `WINDOWS` window of the stock TFDS decode, zero-padded past its episode's end, as
    (mask, images per camera field), keyed by its first step's state (unique per step)."""
    span, period = WINDOWS["length"] + WINDOWS["burn_in"], WINDOWS["period"]
    expected = {}
    for episode in _stock_episodes(camera_store, "cams").values():
        steps = episode["steps"]
        size = len(steps["is_first"])
        for start in range(0, size, period):
            real = np.arange(start, start + span) < size
            window = np.minimum(np.arange(start, start + span), size - 1)
            padded = {field: steps["observation"][camera][window] * real[:, None, None, None]
                      for field, camera in zip(FIELDS, cf.CAMERAS)}
            expected[steps["observation"]["state"][start].tobytes()] = (real.astype(np.float32), padded)
            if start + span >= size:
                break
    assert any(mask.min() == 0 for mask, _ in expected.values())  # some windows are padded
    return expected


def _check_windows(batch: dict, expected: dict) -> list[bytes]:
    """Asserts every window of `batch` equals its stock window bit for bit; returns their keys."""
    keys = []
    for row in range(len(batch["mask"])):
        keys.append(batch["observation"]["state"][row, 0].tobytes())
        mask, images = expected[keys[-1]]
        np.testing.assert_array_equal(batch["mask"][row], mask)
        for field, camera in zip(FIELDS, cf.CAMERAS):
            assert batch["observation"][camera].dtype == np.uint8
            np.testing.assert_array_equal(batch["observation"][camera][row], images[field])
    return keys


def test_camera_windows_equal_stock_decoded_windows_padding_included(camera_store, stock_windows):
    """`sequences` gathers padded windows of decoded JPEGs: bit-for-bit the stock TFDS decode,
    and all-zero images (with mask 0) where a window runs past its episode's end."""
    from rlstore import reading

    expected = stock_windows
    windows = reading.sequences(camera_store, "cams", **WINDOWS, batch_size=3, shuffle=False, repeat=False)
    seen = [key for batch in windows.as_numpy_iterator() for key in _check_windows(batch, expected)]
    assert sorted(seen) == sorted(expected)
    # its parallelism is tf.data's (two batches at once), not each gather's over TF's intra-op threads
    assert windows.options().threading.max_intra_op_parallelism == 1


@pytest.mark.parametrize("kept", ["memory", "split", "disk", None])
def test_repeated_epochs_of_windows_equal_stock_kept_decoded_or_not(camera_store, stock_windows, kept, tmp_path,
                                                                    monkeypatch):
    """With `repeat`, a JPEG version is decoded once and kept in RAM (default, small version),
    partly in RAM and the rest spilled to temp files (a RAM budget of 2/3 of it), all spilled
    (`decoded_cache_bytes=0`), or decoded every epoch (both budgets 0): every window of every
    epoch equals the stock decode either way, each window comes once per epoch (batches of 1
    drop nothing), later epochs come in a new order, and the spilled files live in a temp dir
    of their own that goes with the reader."""

    import gc
    import tempfile

    from rlstore import reading
    from rlstore.reading import decoded_cache

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    expected = stock_windows
    manifest = camera_store.manifest("cams")
    # split: 2/3 of the version holds any first chunk (2 of the 5 episodes of 2-5 steps) but never all 3
    budgets = {"memory": {}, "split": {"decoded_cache_bytes": 2 * decoded_cache.decoded_bytes(manifest) // 3},
               "disk": {"decoded_cache_bytes": 0}, None: {"decoded_cache_bytes": 0, "decoded_disk_bytes": 0}}[kept]
    ram, disk = decoded_cache.RAM_BYTES, decoded_cache.DISK_BYTES
    assert decoded_cache.placement(manifest, 2, budgets.get("decoded_cache_bytes", ram),
                                   budgets.get("decoded_disk_bytes", disk)) == {"split": "disk"}.get(kept, kept)
    assert decoded_cache.placement(manifest, 6, ram, disk) is None  # < 1 chunk
    batches = reading.sequences(camera_store, "cams", **WINDOWS, batch_size=1, seed=3, chunk_episodes=2, **budgets)
    windows = batches.take(4 * len(expected))
    order = [key for batch in windows.as_numpy_iterator() for key in _check_windows(batch, expected)]
    assert_epochs(order, Counter(list(expected)), 4)
    spilled = list(tmp_path.glob("rlstore-decoded-*"))
    assert len(spilled) == (kept in ("split", "disk"))
    if spilled:  # 3 chunks, each in RAM or in files of the first iterator's: <iterator>-<chunk>-<tensor>
        files = sorted(path.name for path in spilled[0].iterdir())
        chunks = {name.rsplit("-", 1)[0] for name in files}
        assert len(chunks) == 3 and all(chunk.startswith("1-") for chunk in chunks) if kept == "disk" else \
            0 < len(chunks) < 3
        again = [key for batch in windows.as_numpy_iterator() for key in _check_windows(batch, expected)]
        assert_epochs(again, Counter(list(expected)), 4)
        assert sorted(path.name for path in spilled[0].iterdir()) == files  # a later iterator reuses them
    del batches, windows
    gc.collect()
    assert not list(tmp_path.glob("rlstore-decoded-*"))


def _raw_image_episodes(count: int = 3, length: int = 4) -> list[dict]:
    from rlstore.episode import make_episode

    rng = np.random.default_rng(3)
    smooth = np.linspace(0, 180, 16, dtype=np.float32)
    episodes = []
    for i in range(count):
        def images(offset):
            base = smooth[None, None, :, None] + smooth[None, :, None, None] * 0.2 + offset
            return np.clip(base + rng.integers(0, 6, size=(length, 16, 16, 3)), 0, 255).astype(np.uint8)

        episodes.append(make_episode(
            observation={"wrist": images(10 * i), "depth": images(40), "front": images(70)},
            action=rng.normal(size=(length, 2)).astype(np.float32), reward=np.zeros(length, np.float32),
            discount=np.ones(length, np.float32), is_terminal=False,
            episode_metadata={"episode_id": np.int64(i)}))
    return episodes


def test_raw_images_take_the_encoding_chosen_per_field(capsys, tmp_path):
    episodes = _raw_image_episodes()
    logs = tmp_path / "logs"
    write_npz_logs(logs, episodes)
    code = main(["--store", str(tmp_path / "store"), "ingest", "--dataset", "raw", "--image-encoding",
                 "observation/wrist=jpeg:90", "--image-encoding", "observation/depth=zlib", str(logs), "--", *BEAM])
    assert code == 0, capsys.readouterr().err
    store = Store(tmp_path / "store")
    manifest = store.manifest("raw")
    specs = manifest.schema.steps
    assert (specs["observation/wrist"].encoding, specs["observation/wrist"].quality) == ("jpeg", 90)
    assert specs["observation/depth"].encoding == "zlib" and specs["observation/front"].encoding == "png"
    assert manifest.lineage["options"]["image_encodings"] == {"observation/wrist": "jpeg:90", "observation/depth": "zlib"}
    stored = cf.stored_images(store.shard_paths("raw"), "observation/wrist", key="episode_id")
    assert all(image.startswith(b"\xff\xd8\xff") for images in stored.values() for image in images)
    stock = _stock_episodes(store, "raw")
    for episode in episodes:
        got = stock[int(episode["episode_id"])]["steps"]["observation"]
        want = episode["steps"]["observation"]
        np.testing.assert_array_equal(got["depth"], want["depth"])  # lossless
        np.testing.assert_array_equal(got["front"], want["front"])
        assert np.abs(got["wrist"].astype(int) - want["wrist"]).mean() < 3  # lossy, close
    assert validate(store, "raw") == []


@pytest.mark.parametrize("option, message", [
    ("observation/nope=png", "field 'steps/observation/nope': --image-encoding names no step field"),
    ("observation/wrist=jpeg:101", "JPEG quality must be an integer from 1 to 100"),
    ("observation/wrist=webp", "unknown image encoding 'webp'"),
])
def test_bad_image_encoding_option_is_one_line(capsys, tmp_path, option, message):
    logs = tmp_path / "logs"
    write_npz_logs(logs, _raw_image_episodes(count=1, length=2))
    code = main(["--store", str(tmp_path / "store"), "ingest", "--dataset", "raw", "--image-encoding", option,
                 str(logs), "--", *BEAM])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and message in err, err
    assert Store(tmp_path / "store").versions("raw") == []


def _plant_bad_images(split: str, episodes: list[dict]) -> None:
    """train episode 1, step 2: a wrist JPEG cut inside its scan (its header still reads);
    val episode 11, step 1: bytes that are no image at all."""
    if split == "train":
        images = episodes[1]["steps"]["observation"]["wrist_image"]
        images[2] = images[2][:images[2].index(b"\xff\xda") + 20]
    else:
        episodes[1]["steps"]["observation"]["image"][1] = b"this is not a picture"


@pytest.fixture(scope="module")
def damaged_source(tmp_path_factory):
    return cf.write_camera_dataset(tmp_path_factory.mktemp("damaged_cameras"), damage=_plant_bad_images)[0]


def test_image_that_is_no_jpeg_is_refused_at_ingest(capsys, tmp_path, damaged_source):
    code = main(["--store", str(tmp_path / "store"), "ingest", "--dataset", "cams", str(damaged_source), "--", *BEAM])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1, err
    assert "robot_cams-val.tfrecord" in err and "episode 1, step 1, field 'steps/observation/image'" in err, err
    assert "neither PNG nor JPEG" in err, err


def test_jpeg_that_does_not_decode_is_found_by_validate(capsys, tmp_path, damaged_source):
    store = Store(tmp_path / "store")
    manifest = ingest(store, "cams", [str(damaged_source)], beam_args=BEAM, on_error="skip")
    assert manifest.data["report"]["rejects"]["count"] == 1 and manifest.num_episodes == 4
    problems = validate(store, "cams")
    assert len(problems) == 1, problems
    assert "/segments/" in problems[0].file and "cams-train.tfrecord" in problems[0].file
    assert "episode " in problems[0].reason
    assert "step 2, field 'steps/observation/wrist_image': image does not decode" in problems[0].reason
    code = main(["--store", str(tmp_path / "store"), "validate", "cams"])
    out = capsys.readouterr()
    assert code == 1 and "step 2, field 'steps/observation/wrist_image'" in out.out + out.err
