"""Reverb serving benchmark: bulk loading a version, and learner-side sampling from the table.

Workload (from the issue): the version `benchmarks/serve.py` builds (1,000 episodes x 200 steps,
float32[4] observations, int64 actions; `--quick`: 250 episodes), served as 1-step transitions
into a uniform table with FIFO removal and a MinSize(1) limiter.

Load rate, items/s, measured in turns over `rounds` rounds (best of each kept, since the
machine is shared and noisy), each round into fresh tables of one fresh in-process server:
  * ours: `rlstore.replay.load_version`, reading the version from disk included;
  * baseline: a per-step Python `TrajectoryWriter` (`client.trajectory_writer`, Reverb's
    auto-tuned chunks): one `append` of the step and one `create_item` of `history[k][-1]` per
    item, as an Acme adder does, fed the same transitions precomputed in memory (reading not
    timed, which only helps it) and flushed every 4,096 items.
The target is ours/baseline >= 5. The process CPU time per item (all threads, the in-process
server's included) is reported too: on a busy machine it is the steadier measure of the work.

Sampling rate, samples/s, from the last round's two tables, which hold the same transitions
(table size matters: sampling from 20,000 items is a third faster than from 100,000):
  * ours: `rlstore.replay.sample_dataset(address, table, 256)` on the bulk-loaded table (one
    sampling worker per core, 512 samples in flight per worker);
  * baseline: a raw `reverb.TrajectoryDataset.from_table_signature` on the per-step-written
    table, with Reverb's default worker count (one, for a table in the same process), 512
    samples in flight, the same batch (256) and prefetch. Target ours/baseline >= 0.9.
  * reported too: the raw dataset with the helper's settings on the per-step-written table, so
    `sample_ratio_vs_raw_same_settings` isolates what the bulk loader's chunk layout costs.
Rates are the best of timed windows taken in turns (`benchmarks.serve.best_rates`).

Also reported, without a target: items/s of restoring those tables from a Reverb checkpoint
(server start included), which is how a restarted server over the same version and layout
fills its tables instead of loading them.

`measure(quick)` returns the figures (merged by `benchmarks/serve.py`); run alone, prints one
JSON line on stdout; progress goes to stderr.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rlstore.quiet import silence  # noqa: E402

silence()  # before TensorFlow

import numpy as np  # noqa: E402
import reverb  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import log, quick_parser  # noqa: E402
from benchmarks.serve import best_rates, build_version  # noqa: E402
from rlstore.reading import transitions  # noqa: E402
from rlstore.replay import TRANSITIONS, Layout, load_version, sample_dataset  # noqa: E402
from rlstore.replay.logs import reverb_logs_filtered  # noqa: E402
from rlstore.replay.tables import make_table, preload_bound, transition_signature  # noqa: E402

LOAD_TARGET = 5.0
SAMPLE_TARGET = 0.9
BATCH = 256
FLUSH_EVERY = 4096
EQUAL = "equal"  # the baseline's table: same options and signature as `transitions`
FULL = {"episodes": 1000, "rounds": 3, "seconds": 1.5, "sample_rounds": 8}
QUICK = {"episodes": 250, "rounds": 2, "seconds": 0.75, "sample_rounds": 3}


def in_memory_rows(store, ref: str) -> dict[str, np.ndarray]:
    """Every 1-step transition of the version, as numpy columns (the baseline's input)."""
    batches = list(transitions(store, ref, batch_size=1 << 16, shuffle=False, repeat=False).as_numpy_iterator())
    return {key: np.concatenate([batch[key] for batch in batches]) for key in batches[0]}


def per_step_fill(address: str, table: str, rows: dict[str, np.ndarray]) -> int:
    """Baseline: a per-step Python TrajectoryWriter writes every row."""
    keys = list(rows)
    count = len(rows[keys[0]])
    with reverb.Client(address).trajectory_writer(num_keep_alive_refs=1) as writer:
        for i in range(count):
            writer.append({key: rows[key][i] for key in keys})
            writer.create_item(table, 1.0, {key: writer.history[key][-1] for key in keys})
            if i % FLUSH_EVERY == FLUSH_EVERY - 1:
                writer.flush()
        writer.flush()
    return count


def new_server(store, ref: str, layout: Layout, checkpoints: Path):
    """An in-process server with empty `transitions` and `equal` tables of identical options."""
    manifest = store.manifest(ref)
    options, signature = layout.options, transition_signature(manifest.schema)
    preload = preload_bound(manifest, layout, TRANSITIONS)
    tables = [make_table(name, options, signature, preload) for name in (TRANSITIONS, EQUAL)]
    return reverb.Server(tables, port=None, checkpointer=reverb.checkpointers.DefaultCheckpointer(str(checkpoints)))


def timed(fill) -> tuple[int, float, float]:
    """(items, wall seconds, process CPU seconds: every thread, the in-process server's too)."""
    wall, cpu = time.perf_counter(), time.process_time()
    items = fill()
    return items, time.perf_counter() - wall, time.process_time() - cpu


def load_rounds(store, ref: str, timing: dict, work: Path) -> tuple[dict, reverb.Server]:
    """Bulk load and per-step writer in turns; returns their best figures and the last server,
    left running: its `transitions` and `equal` tables serve the sampling comparison."""
    rows = in_memory_rows(store, ref)
    layout = Layout(tables=(TRANSITIONS,))
    best = {"ours": (0.0, math.inf), "base": (0.0, math.inf)}  # (items/s, CPU s per item)
    server = None
    for round_ in range(timing["rounds"]):
        if server is not None:
            server.stop()
        server = new_server(store, ref, layout, work / "checkpoints")
        address = f"localhost:{server.port}"
        for name, fill in (("ours", lambda: load_version(address, store, ref, layout)[TRANSITIONS]),
                           ("base", lambda: per_step_fill(address, EQUAL, rows))):
            items, wall, cpu = timed(fill)
            best[name] = (max(best[name][0], items / wall), min(best[name][1], cpu / items))
            log(f"round {round_ + 1}, {name}: {items / wall:,.0f} items/s, {cpu / items * 1e6:.1f} CPU us/item")
    return best, server


def sampling(address: str, timing: dict) -> dict[str, float]:
    """Samples/s: our helper on the bulk-loaded table; on the per-step-written table, a raw
    TrajectoryDataset with Reverb's defaults, and one with the helper's settings."""
    def raw(**settings) -> tf.data.Dataset:
        samples = reverb.TrajectoryDataset.from_table_signature(
            address, EQUAL, max_in_flight_samples_per_worker=2 * BATCH, **settings)
        return samples.batch(BATCH, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

    workers = min(os.cpu_count() or 1, 8)
    return best_rates({"ours": (sample_dataset(address, TRANSITIONS, BATCH, workers=workers), BATCH),
                       "raw": (raw(), BATCH), "raw_same_settings": (raw(num_workers_per_iterator=workers), BATCH)},
                      timing["seconds"], timing["sample_rounds"])


def restore_rate(server: reverb.Server, store, ref: str, work: Path) -> float:
    """Items/s of a server start that restores the last round's tables from a checkpoint, as a
    restarted `rlstore serve` over the same version and layout does instead of loading."""
    client = reverb.Client(f"localhost:{server.port}")
    items = sum(info.current_size for info in client.server_info().values())
    client.checkpoint()
    server.stop()
    start = time.perf_counter()
    restored = new_server(store, ref, Layout(tables=(TRANSITIONS,)), work / "checkpoints")
    elapsed = time.perf_counter() - start
    assert sum(info.current_size for info in restored.localhost_client().server_info().values()) == items
    restored.stop()
    return items / elapsed


def measure(quick: bool) -> dict:
    timing = QUICK if quick else FULL
    work = Path(tempfile.mkdtemp(prefix="rlstore-bench-reverb-"))
    try:
        with reverb_logs_filtered():
            log(f"building a version of {timing['episodes']} episodes x 200 steps")
            store, ref = build_version(work / "store", timing["episodes"], 200)
            manifest = store.manifest(ref)
            load, server = load_rounds(store, ref, timing, work)
            samples = sampling(f"localhost:{server.port}", timing)
            log(f"sampling: served table {samples['ours']:,.0f} samples/s, raw TrajectoryDataset "
                f"{samples['raw']:,.0f} samples/s, with the helper's settings {samples['raw_same_settings']:,.0f}")
            restore = restore_rate(server, store, ref, work)
            log(f"restoring a checkpoint: {restore:,.0f} items/s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (ours, ours_cpu), (base, base_cpu) = load["ours"], load["base"]
    load_ratio, sample_ratio = ours / base, samples["ours"] / samples["raw"]
    return {"items": manifest.num_steps - manifest.num_episodes,
            "bulk_load_items_per_s": round(ours), "per_step_writer_items_per_s": round(base),
            "load_ratio_vs_per_step_writer": round(load_ratio, 2), "load_target_ratio": LOAD_TARGET,
            "bulk_load_cpu_us_per_item": round(ours_cpu * 1e6, 1),
            "per_step_writer_cpu_us_per_item": round(base_cpu * 1e6, 1),
            "load_cpu_ratio": round(base_cpu / ours_cpu, 2),
            "served_samples_per_s": round(samples["ours"]),
            "raw_trajectory_dataset_samples_per_s": round(samples["raw"]),
            "sample_ratio_vs_raw": round(sample_ratio, 3), "sample_target_ratio": SAMPLE_TARGET,
            "raw_same_settings_samples_per_s": round(samples["raw_same_settings"]),
            "sample_ratio_vs_raw_same_settings": round(samples["ours"] / samples["raw_same_settings"], 3),
            "checkpoint_restore_items_per_s": round(restore),
            "meets_targets": load_ratio >= LOAD_TARGET and sample_ratio >= SAMPLE_TARGET}


def main() -> None:
    parser = quick_parser(__doc__, "a smaller version and fewer rounds (under a minute)")
    args = parser.parse_args()
    report = {"benchmark": "serve_reverb", "quick": args.quick, "batch_size": BATCH}
    with contextlib.redirect_stdout(sys.stderr):
        report.update(measure(args.quick))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
