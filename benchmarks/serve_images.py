"""Reverb serving of Atari frames stored once: the server's memory per stored frame.

Workload (issue 11, item 5): real ALE Pong frames (random policy, 84x84 grayscale, episodes cut
at 500 steps) written by Dopamine's replay buffer (`benchmarks/images.py` makes them), ingested
as `dqn_replay` (frames stored once, stack 4), served as 3-step transitions. Each server runs in
a process of its own, and its resident memory (VmRSS) is read before and after the version is
loaded into its one table:
  * shared: `rlstore.replay.load_version`, which appends every frame once and makes each item's
    `observation` and `next_observation` reference the 4 frame cells of its stack
    (`rlstore.replay.stacked`);
  * baseline, same run: the same rows with their stacks copied into every item (what serving the
    rows of `rlstore.reading.transitions` as they are would do: 8 frames per item), through the
    same writer rlstore uses for every other version (`rlstore.replay.writing.RowWriter`).
Figures: bytes of server memory per stored frame, both ways, and their ratio; for scale, the raw
frame (7,056 bytes), the store's shard bytes per frame, and the server memory per item of a
table holding the same number of items with only the scalar fields (action, reward, discount):
Reverb's own bookkeeping per item, which no frame layout removes. Prints one JSON line with the load
average; progress goes to stderr.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import log, quick_parser  # noqa: E402

from rlstore.quiet import silence  # noqa: E402

silence()  # before TensorFlow

FULL = {"frames": 50_000}
QUICK = {"frames": 6_000}
N_STEP = 3
LAYOUT = {"tables": ("transitions",), "n_step": N_STEP}
SETTLE_SECONDS = 2.0


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def _tables(store_root: str, ref: str, mode: str) -> list:
    """The table of `LAYOUT` for the version; `copied` gives it whole [84, 84, 4] stacks."""
    import tensorflow as tf

    from rlstore.replay import Layout
    from rlstore.replay.tables import make_table, make_tables, preload_bound
    from rlstore.store import Store

    manifest, layout = Store(store_root).manifest(ref), Layout(**LAYOUT)
    if mode == "shared":
        return make_tables(manifest, layout)
    frame = manifest.schema.steps["observation"]
    stacks = tf.TensorSpec((*frame.shape, frame.stack), tf.uint8)
    scalar = tf.TensorSpec((), tf.float32)
    signature = {"action": tf.TensorSpec((), tf.as_dtype(manifest.schema.steps["action"].dtype)),
                 "reward": scalar, "discount": scalar}
    if mode == "copied":
        signature.update(observation=stacks, next_observation=stacks)
    return [make_table("transitions", layout.options, signature, preload_bound(manifest, layout, "transitions"))]


def _serve(store_root: str, ref: str, mode: str) -> None:
    """Child process: a bare Reverb server holding the (empty) table; prints its port, then
    serves until stdin closes."""
    import reverb

    server = reverb.Server(_tables(store_root, ref, mode))
    print(server.port, flush=True)
    sys.stdin.read()
    server.stop()


@contextlib.contextmanager
def server_process(store_root: Path, ref: str, mode: str):
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(store_root), ref, mode],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(child.stdout.readline())
        yield child.pid, f"localhost:{port}"
    finally:
        child.stdin.close()
        child.wait(timeout=60)


def fill_copied(address: str, store, ref: str) -> int:
    """The baseline: every item holds its own two stacks, rows from the reader as they are."""
    import tree

    from rlstore.reading import transitions
    from rlstore.replay.writing import RowWriter

    writer, count = RowWriter(address, "transitions"), 0
    try:
        for batch in transitions(store, ref, n_step=N_STEP, batch_size=4096, shuffle=False,
                                 repeat=False).as_numpy_iterator():
            writer.insert("transitions", 1.0, [list(column) for column in tree.flatten(batch)])
            count += len(batch["action"])
        writer.flush()
    finally:
        writer.close()
    return count


def fill_scalars(address: str, items: int, action_dtype: str) -> int:
    """Items of the three scalar fields alone: what Reverb's bookkeeping costs per item."""
    import numpy as np

    from rlstore.replay.writing import RowWriter

    writer = RowWriter(address, "transitions")
    try:
        writer.insert("transitions", 1.0, [np.zeros(items, action_dtype), np.zeros(items, np.float32),
                                           np.zeros(items, np.float32)])
        writer.flush()
    finally:
        writer.close()
    return items


def measured_fill(store_root: Path, ref: str, mode: str, fill) -> dict:
    with server_process(store_root, ref, mode) as (pid, address):
        time.sleep(SETTLE_SECONDS)
        before = rss_bytes(pid)
        started = time.perf_counter()
        items = fill(address)
        seconds = time.perf_counter() - started
        time.sleep(SETTLE_SECONDS)
        after = rss_bytes(pid)
    return {"items": items, "load_seconds": round(seconds, 2), "rss_before_mib": round(before / 2**20, 1),
            "rss_after_mib": round(after / 2**20, 1), "growth_bytes": after - before}


def measure(frames: int) -> dict:
    from benchmarks.images import dopamine_checkpoint
    from rlstore.pipelines.ingest import ingest
    from rlstore.replay import Layout, load_version
    from rlstore.store import Store

    with tempfile.TemporaryDirectory(prefix="rlstore-bench-serve-images-") as temp:
        work = Path(temp)
        log(f"playing {frames} Pong frames into Dopamine's replay buffer and ingesting them")
        with contextlib.redirect_stdout(sys.stderr):  # ALE and TFDS print to stdout
            dopamine_checkpoint(work / "replay", frames)
            store = Store(work / "store")
            manifest = ingest(store, "pong", [str(work / "replay")])
        ref = f"{manifest.name}@{manifest.version}"
        shard_bytes = sum(s["bytes"] for segment in manifest.segments for s in segment["shards"])
        log("shared frames: load_version into a fresh server process")
        shared = measured_fill(store.root, ref, "shared",
                               lambda address: load_version(address, store, ref, Layout(**LAYOUT))["transitions"])
        log("baseline: the same rows with copied stacks into a fresh server process")
        copied = measured_fill(store.root, ref, "copied", lambda address: fill_copied(address, store, ref))
        log("for scale: as many items of the scalar fields alone")
        scalars = measured_fill(store.root, ref, "scalars", lambda address: fill_scalars(
            address, shared["items"], manifest.schema.steps["action"].dtype))
    steps = manifest.num_steps
    shared_per_frame, copied_per_frame = shared["growth_bytes"] / steps, copied["growth_bytes"] / steps
    return {"frames": frames, "stored_steps": steps, "episodes": manifest.num_episodes, "n_step": N_STEP,
            "server_bytes_per_frame": round(shared_per_frame, 1),
            "copied_stacks_server_bytes_per_frame": round(copied_per_frame, 1),
            "ratio_copied_vs_shared": round(copied_per_frame / max(shared_per_frame, 1.0), 2),
            "raw_frame_bytes": 84 * 84, "store_bytes_per_frame": round(shard_bytes / steps, 1),
            "item_bookkeeping_bytes": round(scalars["growth_bytes"] / scalars["items"], 1),
            "shared": shared, "copied": copied, "scalars_only": scalars}


def main() -> None:
    parser = quick_parser(__doc__, f"{QUICK['frames']:,} frames instead of {FULL['frames']:,}")
    parser.add_argument("--serve", nargs=3, metavar=("STORE", "REF", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return _serve(*args.serve)
    budget = QUICK if args.quick else FULL
    report = {"benchmark": "serve_images", "quick": args.quick, **measure(budget["frames"]),
              "load_average": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
