"""Image-scale data: Atari frames stored once and read as stacked n-step transitions.

The `atari` part (issue 11); the `camera` part (two JPEG cameras and language, read as 8-step
windows) is in benchmarks/images_camera.py, and `--only atari|camera` runs one of them.
The benchmark plays real ALE Pong itself (random policy, 4-frame skip, 84x84 grayscale, episodes
cut at 500 steps; `rlstore.envs.atari`), feeds the frames to
Dopamine's own OutOfGraphReplayBuffer and saves it, as the DQN Replay Dataset was made. Then:
  * storage: the version's shard bytes per frame against Dopamine's gzipped frame file
    (`$store$_observation_ckpt.0.gz`) per frame (`storage_ratio_vs_dopamine`, target: at most
    3x). The version is ingest's default layout for frame stacks: raw frames in parquet shards,
    an episode's frames zstd-compressed together (`rlstore.shard_formats`). The same checkpoint
    is ingested again with `shard_format="tfrecord"` (each frame zlib-compressed on its own in
    TFRecord shards, the layout before parquet) for its bytes and reader rate (`tfrecord_zlib`);
  * ingest: `rlstore ingest` of that checkpoint (format auto-detected as dqn_replay), frames/s;
  * reader: `rlstore.reading.transitions(n_step=3, batch_size=32)`, stacks of 4 rebuilt,
    pulled inside a `tf.function` (as Acme's learners pull), on the parquet version;
  * baseline, same run: the stock RLDS path over the same episodes stored as today's 4-channel
    PNG stacks: TFDS `as_dataset` + `rlds.transformations.batch(size=4, shift=1)` per episode
    (a window of o_t..o_{t+3} is one 3-step transition), `.batch(32)` (target: reader >= 10x);
  * ceiling: a numpy gather of stacked 3-step transitions (obs and next obs stacks, action,
    reward) from the decoded frames in RAM, batch 32 (target: reader >= 0.25 of it);
  * reader memory: peak RSS of a fresh process reading 200 batches from the version and from
    a copy of its first quarter of episodes (4x smaller): it should not grow with the data.
Each rate is the best of `rounds` timed windows taken in turns; `cpu_us_per_transition` is the
least CPU time (this process's user + system, every tf.data thread) per transition in those
windows, which moves far less than rates with the load of a shared machine. Both baselines are
the issue's own definitions, measured here: the PNG stacks sit in TFRecord shards, the layout
before parquet, read by stock TFDS; the issue's figures (stock 4.8k/s, ceiling 263k/s) came
from a measurement on old main whose script was not kept. Prints one JSON line with the load
average; progress goes to stderr.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rlstore.quiet import silence  # noqa: E402

silence()  # before TensorFlow (the camera half and the serving helpers import it)

from benchmarks.common import children_stdout, log, peak_rss_mib, quick_parser  # noqa: E402
from benchmarks import images_camera  # noqa: E402
from benchmarks.serve import graph_pull, timed_rates  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from rlstore.envs.atari import random_play  # noqa: E402
from rlstore.episode import make_episode  # noqa: E402
from rlstore.frames import episode_firsts, stack  # noqa: E402
from rlstore.reading import transitions  # noqa: E402
from rlstore.schema import Schema  # noqa: E402
from rlstore.segment import ShardWriter, finish_segment  # noqa: E402
from rlstore.shard_formats import ZSTD_LEVEL, segment_format  # noqa: E402
from rlstore.store import Store  # noqa: E402

STACK = 4
N_STEP = 3
BATCH = 32
EPISODE_STEPS = 500
TARGETS = {"ratio_vs_stock": 10.0, "fraction_of_ceiling": 0.25, "storage_ratio_vs_dopamine": 3.0}
FULL = {"frames": 200_000, "seconds": 3.0, "rounds": 3}
QUICK = {"frames": 4_000, "seconds": 0.75, "rounds": 2}  # with the camera part, under a minute


def dopamine_checkpoint(directory: Path, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Plays Pong into Dopamine's replay buffer and saves it as checkpoint 0; returns the frames
    and a per-frame episode number."""
    from dopamine.tf.replay_memory.circular_replay_buffer import OutOfGraphReplayBuffer

    episodes = -(-frames // EPISODE_STEPS)
    buffer = OutOfGraphReplayBuffer((84, 84), STACK, frames + episodes * (STACK - 1), 32, update_horizon=N_STEP)
    played, numbers, episode = [], [], 0
    for step in random_play("Pong", frames, seed=0, max_episode_steps=EPISODE_STEPS):
        buffer.add(step.frame, step.action, step.reward, step.terminal, episode_end=step.episode_end)
        played.append(step.frame)
        numbers.append(episode)
        episode += step.episode_end
    directory.mkdir(parents=True)
    buffer.save(str(directory), 0)
    return np.stack(played), np.array(numbers)


def stock_png_version(store: Store, ingested: Store) -> str:
    """Today's layout of the same episodes: 4-channel PNG stacks (the schema's default for uint8
    HxWx4), written through the store API."""
    from rlstore.reading import episodes

    schema = None
    with store.staging("png") as staging:
        directory = staging.new_segment_dir()
        writer = ShardWriter(directory)
        for episode in episodes(ingested, "atari", shuffle=False):
            steps = {k: v.numpy() for k, v in episode["steps"].items()}
            stacks = stack(steps["observation"], episode_firsts(steps["is_first"]), np.arange(len(steps["is_first"])), STACK)
            data = make_episode(stacks, steps["action"], steps["reward"], steps["discount"], bool(steps["is_terminal"][-1]))
            schema = schema or Schema.derive(data)
            writer.write(schema.encode(data), len(stacks), float(steps["reward"].sum()))
        segment = finish_segment(directory, "png", schema, writer.close(), {})
        store.publish("png", staging, [segment], schema, {"pipeline": "benchmarks.images"})
    assert schema.steps["observation"].encoding == "png"
    return "png"


def stock_rlds(store: Store, ref: str) -> tf.data.Dataset:
    """The stock RLDS path: TFDS as_dataset, then 4-step windows per episode = 3-step transitions."""
    import rlds

    episodes = store.builder(ref).as_dataset(split="train")
    windows = episodes.flat_map(lambda episode: rlds.transformations.batch(episode["steps"], size=N_STEP + 1, shift=1,
                                                                           drop_remainder=True))
    return windows.repeat().batch(BATCH, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def numpy_ceiling(frames: np.ndarray, numbers: np.ndarray, seconds: float, rounds: int) -> tuple[float, float]:
    """(best transitions/s, least CPU us per transition) of stacked 3-step transitions gathered
    with numpy from decoded frames in RAM, batch 32: both stacks, the action and the discounted
    3-step reward sum.

    The fastest honest gather we found: the frames sit behind one all-zero frame, so a stack is
    one `np.take` of k frame indices (padding slots index the zero frame; no masking pass), both
    stacks of a batch are taken at once, and the [B, k, H, W] result is handed out as a
    [B, H, W, k] view (`np.moveaxis`), as numpy code would: materialising that byte interleave
    costs numpy ~70 us per stack, far more than the gather. The first batch is checked against
    `rlstore.frames.stack`, the definition.
    """
    boundary = np.r_[True, numbers[1:] != numbers[:-1]]
    firsts = episode_firsts(boundary)
    ends = np.flatnonzero(np.r_[boundary[1:], True])[np.cumsum(boundary) - 1]
    padded = np.concatenate([np.zeros_like(frames[:1]), frames])
    actions = np.zeros(len(frames), np.int64)
    rewards = np.zeros(len(frames), np.float32)
    weights = 0.99 ** np.arange(N_STEP, dtype=np.float32)
    slots = np.arange(1 - STACK, 1)
    rng = np.random.default_rng(0)

    def batch() -> dict[str, np.ndarray]:
        index = rng.integers(0, len(frames), BATCH)
        at = np.concatenate([index, np.minimum(index + N_STEP, ends[index])])
        sources = at[:, None] + slots
        stacks = np.moveaxis(np.take(padded, np.where(sources >= firsts[at][:, None], sources + 1, 0), axis=0), 1, -1)
        window = index[:, None] + np.arange(N_STEP)
        live = window < ends[index][:, None]
        return {"observation": stacks[:BATCH], "next_observation": stacks[BATCH:], "action": actions[index],
                "reward": (rewards[np.minimum(window, ends[index][:, None])] * weights * live).sum(axis=1), "at": at}

    check = batch()
    assert np.array_equal(np.concatenate([check["observation"], check["next_observation"]]),
                          stack(frames, firsts, check["at"], STACK))
    best, least_cpu = 0.0, float("inf")
    for _ in range(rounds):
        count, start, cpu = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - start < seconds:
            count += len(batch()["action"])
        best = max(best, count / (time.perf_counter() - start))
        least_cpu = min(least_cpu, 1e6 * (time.process_time() - cpu) / count)
    return best, least_cpu


def quarter_version(root: Path, source: Store) -> Store:
    """A store holding the first quarter of `source`'s `atari` episodes, in the same schema."""
    from rlstore.reading import episodes

    manifest = source.manifest("atari")
    store, keep = Store(root), max(1, manifest.num_episodes // 4)
    with store.staging("atari") as staging:
        directory = staging.new_segment_dir()
        writer = ShardWriter(directory, shard_format=segment_format(manifest.segments[0]))
        for episode in episodes(source, "atari", shuffle=False).take(keep):
            data = tf.nest.map_structure(lambda t: t.numpy(), episode)
            writer.write(manifest.schema.encode(data), len(data["steps"]["is_first"]), float(data["steps"]["reward"].sum()))
        segment = finish_segment(directory, "atari", manifest.schema, writer.close(), {})
        store.publish("atari", staging, [segment], manifest.schema, {"pipeline": "benchmarks.images"})
    return store


def reader_peak_rss(roots: dict[str, Path]) -> dict[str, float]:
    """Peak RSS (MiB) of a fresh process per store root that reads 200 batches of stacked
    3-step transitions from it (the processes run side by side)."""
    outputs = children_stdout([([sys.executable, __file__, "--read-peak-rss", str(root)], None) for root in roots.values()])
    return {name: float(output.strip().splitlines()[-1]) for name, output in zip(roots, outputs)}


def _read_peak_rss(root: str) -> None:
    for _ in zip(range(200), transitions(Store(root), "atari", n_step=N_STEP, batch_size=BATCH)):
        pass
    print(peak_rss_mib())


@contextlib.contextmanager
def held(lock: str | None):
    """Holds an exclusive `flock` on the file `lock` (if given) while timing, so that on a shared
    machine other heavy jobs taking the same lock do not run during the timed windows, while the
    long untimed parts (playing Pong, ingest) do not keep them waiting."""
    if lock is None:
        yield
        return
    import fcntl

    with open(lock, "a") as handle:
        log(f"waiting for {lock}")
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def stored_bytes(manifest) -> int:
    """Bytes of every shard of a version (TFDS metadata files left out)."""
    return sum(shard["bytes"] for segment in manifest.segments for shard in segment["shards"])


def measure(frames: int, seconds: float, rounds: int, lock: str | None = None) -> dict:
    from rlstore.pipelines.ingest import ingest

    work = Path(tempfile.mkdtemp(prefix="rlstore-bench-images-"))
    try:
        log(f"playing {frames} Pong frames into Dopamine's replay buffer")
        played, numbers = dopamine_checkpoint(work / "replay", frames)
        dopamine_bytes = (work / "replay" / "$store$_observation_ckpt.0.gz").stat().st_size
        log("ingesting the checkpoint (format auto-detected)")
        store = Store(work / "store")
        start = time.perf_counter()
        manifest = ingest(store, "atari", [str(work / "replay")])
        ingest_seconds = time.perf_counter() - start
        shard_bytes = stored_bytes(manifest)
        log("ingesting it again into TFRecord shards of zlib frames (the layout before parquet)")
        zlib_store = Store(work / "zlib_store")
        zlib_bytes = stored_bytes(ingest(zlib_store, "atari", [str(work / "replay")], shard_format="tfrecord"))
        log("writing the same episodes as 4-channel PNG stacks")
        png_store = Store(work / "png_store")
        stock_png_version(png_store, store)
        png_bytes = stored_bytes(png_store.manifest("png"))
        log(f"timing readers and stock RLDS: {rounds} turns of {seconds} s windows")
        reader = transitions(store, "atari", n_step=N_STEP, batch_size=BATCH)
        zlib_reader = transitions(zlib_store, "atari", n_step=N_STEP, batch_size=BATCH)
        with held(lock):
            load = [round(x, 2) for x in os.getloadavg()]
            timed = timed_rates({"reader": (graph_pull(reader), BATCH),
                                "tfrecord_zlib": (graph_pull(zlib_reader), BATCH),
                                "stock": (graph_pull(stock_rlds(png_store, "png")), BATCH)}, seconds, rounds)
            timed["ceiling"] = numpy_ceiling(played, numbers, seconds, rounds)
            load += [round(x, 2) for x in os.getloadavg()]
        rates, ceiling = {name: rate for name, (rate, _) in timed.items()}, timed["ceiling"][0]
        cpu = {name: round(us, 1) for name, (_, us) in timed.items()}
        log(f"reader {rates['reader']:,.0f}/s (tfrecord+zlib {rates['tfrecord_zlib']:,.0f}/s), "
            f"stock {rates['stock']:,.0f}/s, numpy ceiling {ceiling:,.0f}/s")
        log("reader peak memory on the version and on its first quarter")
        memory = reader_peak_rss({"quarter": quarter_version(work / "quarter", store).root, "full": store.root})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    per_frame = shard_bytes / manifest.num_steps
    dopamine_per_frame = dopamine_bytes / frames
    return {
        "frames": frames, "episodes": manifest.num_episodes, "stored_steps": manifest.num_steps,
        "layout": f"parquet shards, raw frames, zstd level {ZSTD_LEVEL}",
        "bytes_per_frame": round(per_frame, 1),
        "dopamine_gzip_bytes_per_frame": round(dopamine_per_frame, 1),
        "storage_ratio_vs_dopamine": round(per_frame / dopamine_per_frame, 2),
        "tfrecord_zlib": {"bytes_per_frame": round(zlib_bytes / manifest.num_steps, 1),
                          "storage_ratio_vs_dopamine": round(zlib_bytes / manifest.num_steps / dopamine_per_frame, 2),
                          "reader_transitions_per_s": round(rates["tfrecord_zlib"]),
                          "ratio_vs_stock": round(rates["tfrecord_zlib"] / rates["stock"], 2)},
        "png_stack_bytes_per_frame": round(png_bytes / manifest.num_steps, 1),
        "ingest_frames_per_s": round(frames / ingest_seconds),
        "reader_transitions_per_s": round(rates["reader"]),
        "stock_transitions_per_s": round(rates["stock"]),
        "ceiling_transitions_per_s": round(ceiling),
        "ratio_vs_stock": round(rates["reader"] / rates["stock"], 2),
        "fraction_of_ceiling": round(rates["reader"] / ceiling, 3),
        "cpu_us_per_transition": cpu,
        "cpu_ratio_vs_stock": round(cpu["stock"] / cpu["reader"], 2),
        "load_average_timed": {"before": load[:3], "after": load[3:]},
        "reader_peak_rss_mib": {"quarter": round(memory["quarter"]), "full": round(memory["full"]),
                                "growth": round(memory["full"] / memory["quarter"], 2)},
        "targets": TARGETS,
    }


def main() -> None:
    parser = quick_parser(__doc__, f"{QUICK['frames']:,} frames and shorter windows (under a minute)")
    parser.add_argument("--frames", type=int, help="Pong frames to play (default: 200,000; 4,000 with --quick)")
    parser.add_argument("--timing-lock", metavar="FILE",
                        help="hold an exclusive flock on FILE during the timed reads only (shared machines)")
    parser.add_argument("--only", choices=("atari", "camera"),
                        help="run one part: atari (Pong frames, stacked transitions) or camera (two JPEG cameras, "
                             "8-step windows; see benchmarks/images_camera.py)")
    parser.add_argument("--read-peak-rss", metavar="STORE", help=argparse.SUPPRESS)
    parser.add_argument("--camera-peak-rss", metavar="STORE", help=argparse.SUPPRESS)
    parser.add_argument("--camera-ram-bytes", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.read_peak_rss:
        return _read_peak_rss(args.read_peak_rss)
    if args.camera_peak_rss:
        return images_camera.camera_peak_rss(args.camera_peak_rss, args.camera_ram_bytes)
    budget = {**(QUICK if args.quick else FULL), **({"frames": args.frames} if args.frames else {})}
    report = {"benchmark": "images", "quick": args.quick, "n_step": N_STEP, "batch_size": BATCH, "stack": STACK}
    with contextlib.redirect_stdout(sys.stderr):  # TFDS and friends print progress to stdout
        if args.only != "camera":
            report["atari"] = measure(budget["frames"], budget["seconds"], budget["rounds"], args.timing_lock)
        if args.only != "atari":
            report["camera"] = images_camera.measure_camera(
                **(images_camera.QUICK if args.quick else images_camera.FULL), hold=lambda: held(args.timing_lock))
    report["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
