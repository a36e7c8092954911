"""A small robot-camera RLDS dataset written by TFDS itself, Open X-Embodiment style.

Two JPEG cameras (`observation/image`, `observation/wrist_image`, as OXE names them), a state
vector, continuous actions, a language instruction (text) and its embedding (float vector)
per step, episode metadata, and two splits (train, val). The JPEG bytes are made by Pillow and
handed to TFDS as bytes, so the source shards hold exactly the bytes returned here, and a test
can plant images that do not decode.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Callable

import numpy as np

NAME = "robot_cams"
VERSION = "1.0.0"
SIZE = 16
EMBEDDING = 8
CAMERAS = ("image", "wrist_image")
SPLITS = {"train": ((0, 5), (1, 3), (2, 4)), "val": ((10, 4), (11, 2))}  # (episode id, length)

Episode = dict[str, Any]


def jpeg(pixels: np.ndarray, quality: int = 80) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def camera_episode(episode_id: int, length: int, rng: np.random.Generator) -> Episode:
    """One episode; camera steps are JPEG bytes (smooth pictures, as a camera's are)."""
    ramp = np.linspace(0, 200, SIZE, dtype=np.float32)

    def picture(t: int, camera: int) -> np.ndarray:
        base = ramp[None, :, None] + ramp[:, None, None] * 0.3 + 7 * t + 40 * camera + episode_id
        return np.clip(base + rng.integers(0, 8, size=(SIZE, SIZE, 3)), 0, 255).astype(np.uint8)

    discount = np.ones(length, np.float32)
    discount[-2] = 0.0
    index = np.arange(length)
    instruction = f"put the block {episode_id} in the bowl"
    steps = {
        "observation": {
            **{camera: [jpeg(picture(t, c)) for t in range(length)] for c, camera in enumerate(CAMERAS)},
            "state": rng.normal(size=(length, 4)).astype(np.float32),
        },
        "action": rng.uniform(-1, 1, size=(length, 3)).astype(np.float32),
        "reward": (index == length - 2).astype(np.float32),
        "discount": discount,
        "is_first": index == 0, "is_last": index == length - 1, "is_terminal": index == length - 1,
        "language_instruction": [instruction] * length,
        "language_embedding": np.repeat(rng.normal(size=(1, EMBEDDING)).astype(np.float32), length, axis=0),
    }
    return {"steps": steps, "episode_metadata": {"file_path": f"/robot/ep{episode_id}.h5",
                                                 "episode_id": np.int64(episode_id)}}


def features():
    import tensorflow_datasets as tfds

    image = tfds.features.Image(shape=(SIZE, SIZE, 3), dtype=np.uint8, encoding_format="jpeg")
    return tfds.features.FeaturesDict({
        "steps": tfds.features.Dataset({
            "observation": tfds.features.FeaturesDict({
                **{camera: image for camera in CAMERAS},
                "state": tfds.features.Tensor(shape=(4,), dtype=np.float32),
            }),
            "action": tfds.features.Tensor(shape=(3,), dtype=np.float32),
            "reward": tfds.features.Scalar(dtype=np.float32),
            "discount": tfds.features.Scalar(dtype=np.float32),
            "is_first": tfds.features.Scalar(dtype=np.bool_),
            "is_last": tfds.features.Scalar(dtype=np.bool_),
            "is_terminal": tfds.features.Scalar(dtype=np.bool_),
            "language_instruction": tfds.features.Text(),
            "language_embedding": tfds.features.Tensor(shape=(EMBEDDING,), dtype=np.float32),
        }),
        "episode_metadata": tfds.features.FeaturesDict({
            "file_path": tfds.features.Text(),
            "episode_id": tfds.features.Scalar(dtype=np.int64),
        }),
    })


def write_camera_dataset(directory: str | Path, seed: int = 0,
                         damage: Callable[[str, list[Episode]], None] | None = None) -> tuple[Path, dict[str, list[Episode]]]:
    """Writes the dataset with TFDS's own writer; returns its `<name>/<version>` directory and the
    episodes of each split. `damage(split, episodes)` may alter the episodes before writing."""
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    rng = np.random.default_rng(seed)
    splits = {split: [camera_episode(i, length, rng) for i, length in members] for split, members in SPLITS.items()}
    if damage is not None:
        for split, episodes in splits.items():
            damage(split, episodes)
    tfds.dataset_builders.store_as_tfds_dataset(
        name=NAME, version=VERSION, features=features(),
        split_datasets={split: [(int(e["episode_metadata"]["episode_id"]), e) for e in episodes]
                        for split, episodes in splits.items()},
        data_dir=str(directory), file_format="tfrecord",
        download_config=tfds.download.DownloadConfig(max_examples_per_split=None))
    return Path(directory) / NAME / VERSION, splits


def stored_images(shards, field: str, key: str = "episode_metadata/episode_id") -> dict[int, list[bytes]]:
    """Episode id -> the bytes stored for one image step field, read straight from TFRecord shards
    (no TensorFlow, no decoding)."""
    from rlstore.tfrecord import parse_example, read_records

    found = {}
    for shard in shards:
        with open(shard, "rb") as stream:
            for record in read_records(stream, str(shard)):
                example = parse_example(record)
                found[int(example[key][0])] = list(example[f"steps/{field}"])
    return found
