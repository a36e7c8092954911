"""The `camera` part of benchmarks/images.py (issue 11): robot camera episodes read as windows.

Episodes as Open X-Embodiment ships them: two 128x128x3 JPEG cameras, a state vector, a
continuous action and a language instruction per step, written by TFDS's own writer
(`store_as_tfds_dataset`) and ingested by rlstore, which keeps the JPEG bytes as they came.
Then, on the version's files:
  * reader: `rlstore.reading.sequences(length=8, period=1, batch_size=32)`: every 8-step window,
    each JPEG decoded once per chunk of episodes (not once per window it appears in), chunks
    decoded in parallel by tf.data, pulled inside a `tf.function`. With its defaults the first
    epoch's decoded chunks are kept for later epochs (`rlstore.reading.decoded_cache`): all in
    RAM when the version decodes to at most 512 MB (the `--quick` 16 episodes: 63 MB), else
    512 MB of them in RAM and the rest spilled to temp files (the full 200 episodes: 787 MB,
    `placement` "disk", `spilled_share` about 0.35). The `--quick` run also times its version
    all spilled (`spilled`, `decoded_cache_bytes=0`), and every run the reader decoding every
    epoch (`decoding_every_epoch`, both budgets 0);
  * baseline, same run, same files: the stock TFDS path, `builder_from_directories(segments)
    .as_dataset` + `rlds.transformations.batch(size=8, shift=1)` per episode + `.batch(32)`.
`ratio_vs_stock` is the reader's windows/s over the baseline's (target: >= 5). `cpu_us_per_window`
is each contender's least process CPU time per window in those timed windows (`timed_rates`;
steadier than wall time on a loaded machine). Reader memory (the issue's "peak memory stays
bounded as the dataset grows"): the peak RSS of a fresh process reading 3 epochs with the
defaults from a version of a quarter of the episodes and from the whole version, and from the
whole version all spilled (RAM budget 0) and all in RAM (the RAM budget raised to hold it: what
spilling saves; the full run only, as each is a TensorFlow process of its own), each with the
bytes of its temp-file cache and whether that was removed when the process ended. Also
reported: the source's and the store's bytes per step (equal up to framing: the bytes are kept)
and ingest steps/s.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from functools import partial
from typing import Callable, ContextManager

from rlstore.quiet import silence

silence()  # before TensorFlow, also when run on its own

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import children_stdout, log, peak_rss_mib  # noqa: E402
from benchmarks.serve import graph_pull, timed_rates  # noqa: E402
from rlstore.chunks import chunk_episodes_for  # noqa: E402
from rlstore.reading import sequences  # noqa: E402
from rlstore.reading.decoded_cache import DISK_BYTES, RAM_BYTES, decoded_bytes, placement  # noqa: E402
from rlstore.store import Store  # noqa: E402

SIZE = 128
CAMERAS = ("image", "wrist_image")
WINDOW = 8
BATCH = 32
EPISODE_STEPS = 40
TARGETS = {"ratio_vs_stock": 5.0}
FULL = {"episodes": 200, "seconds": 3.0, "rounds": 3,
        "memory_cases": ("quarter", "full", "full_all_spilled", "full_in_ram")}
QUICK = {"episodes": 16, "seconds": 0.75, "rounds": 2, "memory_cases": ("quarter", "full")}  # each case: a TF process


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
    with contextlib.redirect_stdout(io.StringIO()):  # TFDS prints "Downloading and preparing dataset ..."
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


def reader_memory(cases: dict[str, tuple[Path, int]], work: Path) -> dict[str, dict]:
    """Per case (store root, RAM budget): peak RSS (MiB) of a fresh process reading 3 epochs of
    windows from that store, the bytes of its temp-file cache (under a TMPDIR of its own) and
    whether that was gone once the process ended. The processes run side by side."""
    scratches = {case: work / f"tmp_{case}" for case in cases}
    for scratch in scratches.values():
        scratch.mkdir(parents=True)
    outputs = children_stdout([([sys.executable, str(Path(__file__).with_name("images.py")), "--camera-peak-rss",
                                 str(root), "--camera-ram-bytes", str(ram_bytes)], {"TMPDIR": str(scratches[case])})
                               for case, (root, ram_bytes) in cases.items()])
    return {case: {**json.loads(output.strip().splitlines()[-1]),
                   "disk_cache_removed": not any(scratches[case].glob("rlstore-decoded-*"))}
            for case, output in zip(cases, outputs)}


def camera_peak_rss(root: str, ram_bytes: int) -> None:
    """The child of `reader_memory`: reads 3 epochs, prints its figures as one JSON line."""
    store = Store(root)
    manifest = store.manifest("cameras")
    windows = manifest.num_episodes * (EPISODE_STEPS - WINDOW + 1)
    reader = sequences(store, "cameras", length=WINDOW, period=1, batch_size=BATCH, decoded_cache_bytes=ram_bytes)
    for _ in zip(range(3 * windows // BATCH), reader):
        pass
    disk = sum(path.stat().st_size for path in Path(tempfile.gettempdir()).glob("rlstore-decoded-*/*"))
    print(json.dumps({"peak_rss_mib": round(peak_rss_mib()), "disk_cache_bytes": disk,
                      "placement": placement(manifest, chunk_episodes_for(manifest), ram_bytes, DISK_BYTES)}))


def measure_camera(episodes: int, seconds: float, rounds: int, memory_cases: tuple[str, ...],
                   hold: Callable[[], ContextManager] = contextlib.nullcontext) -> dict:
    """The camera figures; `hold()` is entered around the timed reads only (e.g. a flock).
    `memory_cases`: which reader-memory runs to make, of quarter, full (the growth figure needs
    both), full_all_spilled and full_in_ram (what spilling saves; `--quick` skips them)."""
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
        kept = placement(manifest, chunk_episodes_for(manifest), RAM_BYTES, DISK_BYTES)
        log(f"timing reader (decoded version kept: {kept}) and stock TFDS windows: {rounds} turns of {seconds} s")
        windows = partial(sequences, store, "cameras", length=WINDOW, period=1, batch_size=BATCH)
        pulls = {"reader": graph_pull(windows())}
        if kept == "memory":  # the full run's reader spills; time that case on this version too
            pulls["spilled"] = graph_pull(windows(decoded_cache_bytes=0))
        pulls.update(every_epoch=graph_pull(windows(decoded_cache_bytes=0, decoded_disk_bytes=0)),
                     stock=graph_pull(stock_windows(store, "cameras")))
        with hold():
            load = [round(x, 2) for x in os.getloadavg()]
            timed = timed_rates({name: (pull, BATCH) for name, pull in pulls.items()}, seconds, rounds)
            load += [round(x, 2) for x in os.getloadavg()]
        del pulls
        rates = {name: rate for name, (rate, _) in timed.items()}
        cpu = {name: round(us, 1) for name, (_, us) in timed.items()}
        log(f"windows/s: {', '.join(f'{name} {rate:,.0f}' for name, rate in rates.items())}; "
            f"CPU us/window: {cpu}")
        log(f"reader memory: {', '.join(memory_cases)}")
        quarter = Store(work / "quarter_store")
        ingest(quarter, "cameras", [str(write_source(work / "quarter_source", max(1, episodes // 4)))])
        cases = {"quarter": (quarter.root, RAM_BYTES), "full": (store.root, RAM_BYTES),
                 "full_all_spilled": (store.root, 0), "full_in_ram": (store.root, DISK_BYTES)}
        memory = reader_memory({case: cases[case] for case in memory_cases}, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    size = decoded_bytes(manifest)
    return {
        "episodes": manifest.num_episodes, "steps": manifest.num_steps, "cameras": len(CAMERAS),
        "image_size": [SIZE, SIZE, 3], "window": WINDOW,
        "source_bytes_per_step": round(source_bytes / manifest.num_steps),
        "stored_bytes_per_step": round(stored_bytes / manifest.num_steps),
        "ingest_steps_per_s": round(manifest.num_steps / ingest_seconds),
        "decoded_bytes": size, "ram_budget_bytes": RAM_BYTES, "disk_budget_bytes": DISK_BYTES,
        "placement": kept, "spilled_share": round(max(0, size - RAM_BYTES) / size, 3) if kept == "disk" else 0.0,
        "reader_windows_per_s": round(rates["reader"]),
        **({"spilled": {"reader_windows_per_s": round(rates["spilled"]),
                        "ratio_vs_stock": round(rates["spilled"] / rates["stock"], 2)}} if "spilled" in rates else {}),
        "decoding_every_epoch": {"reader_windows_per_s": round(rates["every_epoch"]),
                                 "ratio_vs_stock": round(rates["every_epoch"] / rates["stock"], 2)},
        "stock_windows_per_s": round(rates["stock"]),
        "ratio_vs_stock": round(rates["reader"] / rates["stock"], 2),
        "cpu_us_per_window": cpu, "cpu_ratio_vs_stock": round(cpu["stock"] / cpu["reader"], 2),
        "reader_memory": {**memory,
                          "growth": round(memory["full"]["peak_rss_mib"] / memory["quarter"]["peak_rss_mib"], 2)},
        "load_average_timed": {"before": load[:3], "after": load[3:]},
        "targets": TARGETS,
    }
