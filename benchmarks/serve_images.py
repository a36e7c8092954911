"""Reverb serving of Atari frames stored once: the server's memory per stored frame.

Workload (issue 11, item 5): real ALE Pong frames (random policy, 84x84 grayscale, episodes cut
at 500 steps) written by Dopamine's replay buffer (`benchmarks/images.py` makes them), ingested
as `dqn_replay` (frames stored once, stack 4), served as 3-step transitions (`--table
transitions`, the default) or as R2D3's sequences (`--table sequences`: windows of 40 steps
every 20 with the LSTM state, `rlstore.agents.r2d3.replay.layout` of the default config; its
online actors write their episodes through the same writer). Each server runs in a process of
its own, and its resident memory (VmRSS) is read before and after the version is loaded into
its one table:
  * shared: `rlstore.replay.load_version`, which appends every frame once and makes each item's
    stacked observations reference the frame cells of their stacks (`rlstore.replay.stacked`);
  * baseline, same run: the same rows with their stacks copied into every item (what serving the
    rows of `rlstore.reading.transitions` / `sequences` as they are would do: 8 frames per
    transition, 40 x 4 per window), through the same writer rlstore uses for every other version
    (`rlstore.replay.writing.RowWriter`).
Figures: bytes of server memory per stored frame, both ways, and their ratio; for scale, the raw
frame (7,056 bytes), the store's shard bytes per frame, and the server memory per item of a
table holding the same items without their observations: Reverb's own bookkeeping per item
plus the item's other fields, which no frame layout removes. Prints one JSON line with the load
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
SETTLE_SECONDS = 2.0
ROW_BATCH = {"transitions": 4096, "sequences": 32}  # a batch of copied windows is 32 x 1.1 MB


def layout(table: str):
    """The served layout: 3-step transitions, or R2D3's sequences (its default config)."""
    from rlstore.replay import Layout

    if table == "transitions":
        return Layout(tables=("transitions",), n_step=N_STEP)
    from rlstore.agents.r2d3 import replay
    from rlstore.agents.r2d3.config import R2D3Config

    return replay.layout(R2D3Config())


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def _tables(store_root: str, ref: str, table: str, mode: str) -> list:
    """The table for the version: `shared` frames, `copied` whole [(span,) 84, 84, 4] stacks,
    or `bare` items without their observations."""
    from rlstore.replay.tables import make_table, make_tables, preload_bound, signature
    from rlstore.schema import FieldSpec, Schema
    from rlstore.store import Store

    manifest, served = Store(store_root).manifest(ref), layout(table)
    if mode == "shared":
        return make_tables(manifest, served)
    schema, frame = manifest.schema, manifest.schema.steps["observation"]
    stacked = Schema({**schema.steps, "observation": FieldSpec("uint8", (*frame.shape, frame.stack))}, schema.episode)
    item = signature(stacked, served, table)  # the items of a version that stored whole stacks
    if mode == "bare":
        item = {key: spec for key, spec in item.items() if not key.endswith("observation")}
    return [make_table(table, served.table_options(table), item, preload_bound(manifest, served, table))]


def _serve(store_root: str, ref: str, table: str, mode: str) -> None:
    """Child process: a bare Reverb server holding the (empty) table; prints its port, then
    serves until stdin closes."""
    import reverb

    server = reverb.Server(_tables(store_root, ref, table, mode))
    print(server.port, flush=True)
    sys.stdin.read()
    server.stop()


@contextlib.contextmanager
def server_process(store_root: Path, ref: str, table: str, mode: str):
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(store_root), ref, table, mode],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(child.stdout.readline())
        yield child.pid, f"localhost:{port}"
    finally:
        child.stdin.close()
        child.wait(timeout=60)


def fill_rows(address: str, store, ref: str, table: str, observations: bool) -> int:
    """The reader's rows as they are, one item each: with their observations (the baseline: every
    item holds its own stacks) or without (Reverb's bookkeeping and the other fields)."""
    import tree

    from rlstore.reading import sequences, transitions
    from rlstore.replay.tables import with_core_state
    from rlstore.replay.writing import RowWriter

    served = layout(table)
    if table == "transitions":
        rows = transitions(store, ref, n_step=N_STEP, batch_size=ROW_BATCH[table], shuffle=False, repeat=False)
    else:
        rows = sequences(store, ref, length=served.sequence_length, period=served.sequence_period,
                         burn_in=served.burn_in, batch_size=ROW_BATCH[table], shuffle=False, repeat=False)
    writer, count = RowWriter(address, table), 0
    try:
        for batch in rows.as_numpy_iterator():
            if table != "transitions":
                batch = with_core_state(batch, served)
            if not observations:
                batch = {key: value for key, value in batch.items() if not key.endswith("observation")}
            writer.insert(table, 1.0, [list(column) for column in tree.flatten(batch)])
            count += len(batch["action"])
        writer.flush()
    finally:
        writer.close()
    return count


def measured_fill(store_root: Path, ref: str, table: str, mode: str, fill) -> dict:
    with server_process(store_root, ref, table, mode) as (pid, address):
        time.sleep(SETTLE_SECONDS)
        before = rss_bytes(pid)
        started = time.perf_counter()
        items = fill(address)
        seconds = time.perf_counter() - started
        time.sleep(SETTLE_SECONDS)
        after = rss_bytes(pid)
    return {"items": items, "load_seconds": round(seconds, 2), "rss_before_mib": round(before / 2**20, 1),
            "rss_after_mib": round(after / 2**20, 1), "growth_bytes": after - before}


def measure(frames: int, table: str) -> dict:
    from benchmarks.images import dopamine_checkpoint
    from rlstore.pipelines.ingest import ingest
    from rlstore.replay import load_version
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
        log(f"shared frames: load_version of {table} into a fresh server process")
        shared = measured_fill(store.root, ref, table, "shared",
                               lambda address: load_version(address, store, ref, layout(table))[table])
        log("baseline: the same rows with copied stacks into a fresh server process")
        copied = measured_fill(store.root, ref, table, "copied",
                               lambda address: fill_rows(address, store, ref, table, observations=True))
        log("for scale: the same items without their observations")
        bare = measured_fill(store.root, ref, table, "bare",
                             lambda address: fill_rows(address, store, ref, table, observations=False))
    steps = manifest.num_steps
    shared_per_frame, copied_per_frame = shared["growth_bytes"] / steps, copied["growth_bytes"] / steps
    served = layout(table)
    shape = {"n_step": N_STEP} if table == "transitions" else {
        "sequence_length": served.sequence_length, "period": served.sequence_period, "burn_in": served.burn_in,
        "core_state_shapes": served.core_state_shapes}
    return {"table": table, **shape, "frames": frames, "stored_steps": steps, "episodes": manifest.num_episodes,
            "server_bytes_per_frame": round(shared_per_frame, 1),
            "copied_stacks_server_bytes_per_frame": round(copied_per_frame, 1),
            "ratio_copied_vs_shared": round(copied_per_frame / max(shared_per_frame, 1.0), 2),
            "raw_frame_bytes": 84 * 84, "store_bytes_per_frame": round(shard_bytes / steps, 1),
            "item_bookkeeping_bytes": round(bare["growth_bytes"] / bare["items"], 1),
            "shared": shared, "copied": copied, "without_observations": bare}


def main() -> None:
    parser = quick_parser(__doc__, f"{QUICK['frames']:,} frames instead of {FULL['frames']:,}")
    parser.add_argument("--table", choices=("transitions", "sequences"), default="transitions",
                        help="serve 3-step transitions (default) or R2D3's sequences")
    parser.add_argument("--serve", nargs=4, metavar=("STORE", "REF", "TABLE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return _serve(*args.serve)
    budget = QUICK if args.quick else FULL
    report = {"benchmark": "serve_images", "quick": args.quick, **measure(budget["frames"], args.table),
              "load_average": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
