"""BC learner throughput: updates/s fed from the store vs the data-free ceiling, in one process.

Two workloads (`--images` picks the second):
  * vectors: discrete BC, batch 256, MLP 256x256, on expert demonstrations of gymnasium
    CartPole-v1 (float32[4] observations) recorded by the scripted expert, ingested with the
    Beam pipeline into a temporary store;
  * images (issue 11): discrete BC with the conv torso on 84x84x4 Atari stacks, batch 32, MLP
    256: real ALE Pong frames (random policy) written by Dopamine's replay buffer
    (`benchmarks/images.py` makes them), ingested as `dqn_replay`, so frames are stored once
    and `rlstore.reading.steps` rebuilds every stack.

  * store:    `BCLearner.run(n)`, every batch read from the store version by
              `rlstore.reading.steps` through the builder's input pipeline;
  * ceiling:  `BCLearner.run_on_batch(batch, n)`, the same in-graph update loop on one constant
              in-memory batch: no input at all, the most the update step can do here.

Both use the same learner (same variables and optimizer), both are traced and warmed up first,
and rounds alternate between them so machine load hits both alike. Figures are medians over
rounds; the ratio is store / ceiling, target >= 0.8.

Prints one JSON line on stdout; progress goes to stderr.
"""
from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import log, quick_parser  # noqa: E402

from rlstore.quiet import silence  # noqa: E402

silence()  # before TensorFlow

from tqdm import tqdm  # noqa: E402

TARGET_RATIO = 0.8
FULL = {"episodes": 40, "updates": 2000, "rounds": 5}
QUICK = {"episodes": 10, "updates": 500, "rounds": 3}
IMAGES_FULL = {"frames": 20_000, "updates": 300, "rounds": 5}
IMAGES_QUICK = {"frames": 2_000, "updates": 40, "rounds": 3}
BATCH_SIZE = 256
HIDDEN_SIZES = (256, 256)
IMAGE_BATCH_SIZE = 32
IMAGE_HIDDEN_SIZES = (256,)
ENV = "gym:CartPole-v1"
PONG_ACTIONS = 6  # ALE Pong-v5's minimal action set


def make_dataset(root: Path, episodes: int):
    from rlstore.datasets.demonstrations import record_npz_logs
    from rlstore.pipelines.ingest import ingest
    from rlstore.store import Store

    store = Store(root / "store")
    record_npz_logs(ENV, "expert", episodes, root / "logs", seed=0)
    manifest = ingest(store, "cartpole_expert", [str(root / "logs")], format="npz")
    return store, f"{manifest.name}@{manifest.version}", f"{ENV} expert, {manifest.num_steps} steps"


def make_image_dataset(root: Path, frames: int):
    from benchmarks.images import dopamine_checkpoint
    from rlstore.pipelines.ingest import ingest
    from rlstore.store import Store

    store = Store(root / "store")
    dopamine_checkpoint(root / "replay", frames)
    manifest = ingest(store, "pong", [str(root / "replay")])
    return store, f"{manifest.name}@{manifest.version}", (f"ALE Pong, random policy, {manifest.num_steps} steps as "
                                                          "dqn_replay frames stored once, stacks of 4 rebuilt")


def timed(fn, updates: int) -> float:
    started = time.perf_counter()
    fn(updates)
    return updates / (time.perf_counter() - started)


def main() -> None:
    parser = quick_parser(__doc__, f"smaller budget: {QUICK} (with --images: {IMAGES_QUICK})")
    parser.add_argument("--images", action="store_true",
                        help=f"BC with the conv torso on Atari frame stacks (budget {IMAGES_FULL})")
    args = parser.parse_args()
    quick = args.quick
    budget = (IMAGES_QUICK if quick else IMAGES_FULL) if args.images else (QUICK if quick else FULL)

    from rlstore.agents.bc.builder import BCBuilder
    from rlstore.agents.bc.config import BCConfig
    from rlstore.agents.specs import specs_from_schema

    with tempfile.TemporaryDirectory(prefix="rlstore-bench-learner-") as temp:
        if args.images:
            log(f"playing {budget['frames']} Pong frames into Dopamine's replay buffer and ingesting them")
            with contextlib.redirect_stdout(sys.stderr):  # ALE and TFDS print to stdout
                store, ref, described = make_image_dataset(Path(temp), budget["frames"])
            specs = specs_from_schema(store.manifest(ref).schema, num_actions=PONG_ACTIONS)
            batch_size, hidden_sizes = IMAGE_BATCH_SIZE, IMAGE_HIDDEN_SIZES
        else:
            log(f"recording {budget['episodes']} expert episodes of {ENV} and ingesting them")
            store, ref, described = make_dataset(Path(temp), budget["episodes"])
            specs = specs_from_schema(store.manifest(ref).schema, num_actions=2)
            batch_size, hidden_sizes = BATCH_SIZE, HIDDEN_SIZES
        config = BCConfig(batch_size=batch_size, hidden_sizes=hidden_sizes)
        builder = BCBuilder()
        network = builder.make_networks(specs, config)
        dataset = builder.make_dataset(store, ref, specs, config, seed=0)
        learner = builder.make_learner(network, dataset, specs, config)
        constant = next(iter(dataset))

        store_fed = learner.run
        ceiling = lambda n: learner.run_on_batch(constant, n)  # noqa: E731
        log("tracing and warming up both loops")
        for fn in (store_fed, ceiling):
            fn(budget["updates"] // 5)

        rates: dict[str, list[float]] = {"store": [], "ceiling": []}
        for _ in tqdm(range(budget["rounds"]), desc="rounds", file=sys.stderr):
            rates["store"].append(timed(store_fed, budget["updates"]))
            rates["ceiling"].append(timed(ceiling, budget["updates"]))

    store_rate, ceiling_rate = statistics.median(rates["store"]), statistics.median(rates["ceiling"])
    ratio = store_rate / ceiling_rate
    print(json.dumps({
        "benchmark": "learner", "quick": quick, "budget": budget,
        "workload": {"agent": "bc", "batch_size": batch_size, "hidden_sizes": list(hidden_sizes),
                     "torso": "conv 32,64 (3x3, stride 2)" if args.images else "none", "dataset": described},
        "store_updates_per_s": round(store_rate, 1), "ceiling_updates_per_s": round(ceiling_rate, 1),
        "baseline": "same update step on a constant in-memory batch (data-free ceiling)",
        "ratio_vs_baseline": round(ratio, 3), "target_ratio": TARGET_RATIO, "meets_target": ratio >= TARGET_RATIO,
        "rounds": {name: [round(r, 1) for r in values] for name, values in rates.items()},
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }))


if __name__ == "__main__":
    main()
