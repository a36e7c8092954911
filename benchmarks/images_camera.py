"""The `camera` part of benchmarks/images.py (issue 11): robot camera episodes read as windows.

Episodes as Open X-Embodiment ships them: two 128x128x3 JPEG cameras, a state vector, a
continuous action and a language instruction per step, written by TFDS's own writer
(`store_as_tfds_dataset`) and ingested by rlstore, which keeps the JPEG bytes as they came.
Then, on the version's files:
  * reader: `rlstore.reading.sequences(length=8, period=1, batch_size=32)`: every 8-step window,
    each JPEG decoded once per chunk of episodes (not once per window it appears in), chunks
    decoded in parallel by tf.data, pulled inside a `tf.function`. With its defaults: a version
    that decodes to at most `DECODED_CACHE_BYTES` (512 MB; the `--quick` 24 episodes decode to
    94 MB, the full 200 to 786 MB) is decoded in the first epoch only and kept
    (`kept_decoded` says whether it was). The same reader with `decoded_cache_bytes=0`, decoding
    every epoch, is timed too (`decoding_every_epoch`);
  * baseline, same run, same files: the stock TFDS path, `builder_from_directories(segments)
    .as_dataset` + `rlds.transformations.batch(size=8, shift=1)` per episode + `.batch(32)`.
`ratio_vs_stock` is the reader's windows/s over the baseline's (target: >= 5). Also reported:
the source's and the store's bytes per step (equal up to framing: the bytes are kept) and
ingest steps/s.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, ContextManager

import numpy as np
import tensorflow as tf

from benchmarks.common import log
from benchmarks.serve import best_rates, graph_pull
from rlstore.chunks import decoded_step_bytes
from rlstore.reading import sequences
from rlstore.reading.readers import DECODED_CACHE_BYTES
from rlstore.store import Store

SIZE = 128
CAMERAS = ("image", "wrist_image")
WINDOW = 8
BATCH = 32
EPISODE_STEPS = 40
TARGETS = {"ratio_vs_stock": 5.0}
FULL = {"episodes": 200, "seconds": 3.0, "rounds": 3}
QUICK = {"episodes": 24, "seconds": 1.0, "rounds": 2}


def _jpeg(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _episode(index: int, rng: np.random.Generator) -> dict:
    """A camera episode: smooth moving pictures with sensor noise (JPEG sizes like real ones)."""
    grid = np.linspace(0, 1, SIZE, dtype=np.float32)
    steps = EPISODE_STEPS
    cameras = {}
    for camera, name in enumerate(CAMERAS):
        frames = []
        for t in range(steps):
            phase = 0.05 * t + camera + index
            picture = 120 + 80 * np.sin(6 * grid[None, :, None] + phase) * np.cos(4 * grid[:, None, None] - phase)
            picture = picture + np.array([0, 30, 60]) + rng.normal(0, 4, size=(SIZE, SIZE, 3))
            frames.append(_jpeg(np.clip(picture, 0, 255).astype(np.uint8)))
        cameras[name] = frames
    flags = np.arange(steps)
    discount = np.ones(steps, np.float32)
    return {
        "steps": {
            "observation": {**cameras, "state": rng.normal(size=(steps, 7)).astype(np.float32)},
            "action": rng.uniform(-1, 1, size=(steps, 7)).astype(np.float32),
            "reward": np.zeros(steps, np.float32), "discount": discount,
            "is_first": flags == 0, "is_last": flags == steps - 1, "is_terminal": np.zeros(steps, bool),
            "language_instruction": [f"pick up the object {index % 5} and place it in the drawer"] * steps,
        },
        "episode_id": np.int64(index),
    }


def _features():
    import tensorflow_datasets as tfds

    image = tfds.features.Image(shape=(SIZE, SIZE, 3), dtype=np.uint8, encoding_format="jpeg")
    scalar = tfds.features.Scalar
    return tfds.features.FeaturesDict({
        "steps": tfds.features.Dataset({
            "observation": tfds.features.FeaturesDict({**{name: image for name in CAMERAS},
                                                       "state": tfds.features.Tensor(shape=(7,), dtype=np.float32)}),
            "action": tfds.features.Tensor(shape=(7,), dtype=np.float32),
            "reward": scalar(dtype=np.float32), "discount": scalar(dtype=np.float32),
            "is_first": scalar(dtype=np.bool_), "is_last": scalar(dtype=np.bool_), "is_terminal": scalar(dtype=np.bool_),
            "language_instruction": tfds.features.Text(),
        }),
        "episode_id": scalar(dtype=np.int64),
    })


def write_source(directory: Path, episodes: int) -> Path:
    """The camera episodes as an RLDS dataset written by TFDS; returns its dataset directory."""
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    rng = np.random.default_rng(0)
    tfds.dataset_builders.store_as_tfds_dataset(
        name="robot_cameras", version="1.0.0", features=_features(),
        split_datasets={"train": [(i, _episode(i, rng)) for i in range(episodes)]},
        data_dir=str(directory), file_format="tfrecord",
        download_config=tfds.download.DownloadConfig(max_examples_per_split=None))
    return directory / "robot_cameras" / "1.0.0"


def stock_windows(store: Store, ref: str) -> tf.data.Dataset:
    """The stock path: TFDS as_dataset over the version's segments, 8-step windows per episode."""
    import rlds

    episodes = store.builder(ref).as_dataset(split="train")
    windows = episodes.flat_map(lambda episode: rlds.transformations.batch(episode["steps"], size=WINDOW, shift=1,
                                                                           drop_remainder=True))
    return windows.repeat().batch(BATCH, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def measure_camera(episodes: int, seconds: float, rounds: int,
                   hold: Callable[[], ContextManager] = contextlib.nullcontext) -> dict:
    """The camera figures; `hold()` is entered around the timed reads only (e.g. a flock)."""
    from rlstore.pipelines.ingest import ingest

    work = Path(tempfile.mkdtemp(prefix="rlstore-bench-camera-"))
    try:
        log(f"writing {episodes} camera episodes ({EPISODE_STEPS} steps, 2 JPEG cameras) with TFDS")
        source = write_source(work / "source", episodes)
        source_bytes = sum(p.stat().st_size for p in source.glob("*.tfrecord*"))
        log("ingesting them (JPEG bytes kept)")
        store = Store(work / "store")
        start = time.perf_counter()
        manifest = ingest(store, "cameras", [str(source)])
        ingest_seconds = time.perf_counter() - start
        stored_bytes = sum(s["bytes"] for segment in manifest.segments for s in segment["shards"])
        log(f"timing reader and stock TFDS windows: {rounds} turns of {seconds} s windows")
        reader = sequences(store, "cameras", length=WINDOW, period=1, batch_size=BATCH)
        every_epoch = sequences(store, "cameras", length=WINDOW, period=1, batch_size=BATCH, decoded_cache_bytes=0)
        with hold():
            load = [round(x, 2) for x in os.getloadavg()]
            rates = best_rates({"reader": (graph_pull(reader), BATCH), "every_epoch": (graph_pull(every_epoch), BATCH),
                                "stock": (graph_pull(stock_windows(store, "cameras")), BATCH)}, seconds, rounds)
            load += [round(x, 2) for x in os.getloadavg()]
        log(f"reader {rates['reader']:,.0f} windows/s (decoding every epoch {rates['every_epoch']:,.0f}), "
            f"stock {rates['stock']:,.0f} windows/s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "episodes": manifest.num_episodes, "steps": manifest.num_steps, "cameras": len(CAMERAS),
        "image_size": [SIZE, SIZE, 3], "window": WINDOW,
        "source_bytes_per_step": round(source_bytes / manifest.num_steps),
        "stored_bytes_per_step": round(stored_bytes / manifest.num_steps),
        "ingest_steps_per_s": round(manifest.num_steps / ingest_seconds),
        "decoded_bytes": decoded_step_bytes(manifest) * manifest.num_steps,
        "kept_decoded": decoded_step_bytes(manifest) * manifest.num_steps <= DECODED_CACHE_BYTES,
        "reader_windows_per_s": round(rates["reader"]),
        "decoding_every_epoch": {"reader_windows_per_s": round(rates["every_epoch"]),
                                 "ratio_vs_stock": round(rates["every_epoch"] / rates["stock"], 2)},
        "stock_windows_per_s": round(rates["stock"]),
        "ratio_vs_stock": round(rates["reader"] / rates["stock"], 2),
        "load_average_timed": {"before": load[:3], "after": load[3:]},
        "targets": TARGETS,
    }
