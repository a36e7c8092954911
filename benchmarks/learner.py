"""BC learner throughput: updates/s fed from the store vs the data-free ceiling, in one process.

Workload (from the issue): discrete BC, batch 256, MLP 256x256, on expert demonstrations of
gymnasium CartPole-v1 (float32[4] observations) recorded by the scripted expert, ingested with
the Beam pipeline into a temporary store.

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

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import choose_budget, log  # noqa: E402

from rlstore.quiet import silence  # noqa: E402

silence()  # before TensorFlow

from tqdm import tqdm  # noqa: E402

TARGET_RATIO = 0.8
FULL = {"episodes": 40, "updates": 2000, "rounds": 5}
QUICK = {"episodes": 10, "updates": 500, "rounds": 3}
BATCH_SIZE = 256
HIDDEN_SIZES = (256, 256)
ENV = "gym:CartPole-v1"


def make_dataset(root: Path, episodes: int):
    from rlstore.datasets.demonstrations import record_npz_logs
    from rlstore.pipelines.ingest import ingest
    from rlstore.store import Store

    store = Store(root / "store")
    record_npz_logs(ENV, "expert", episodes, root / "logs", seed=0)
    manifest = ingest(store, "cartpole_expert", [str(root / "logs")], format="npz")
    return store, f"{manifest.name}@{manifest.version}", manifest.num_steps


def timed(fn, updates: int) -> float:
    started = time.perf_counter()
    fn(updates)
    return updates / (time.perf_counter() - started)


def main() -> None:
    quick, budget = choose_budget(__doc__, QUICK, FULL)

    from rlstore.agents.bc.builder import BCBuilder
    from rlstore.agents.bc.config import BCConfig
    from rlstore.agents.specs import specs_from_schema

    with tempfile.TemporaryDirectory(prefix="rlstore-bench-learner-") as temp:
        log(f"recording {budget['episodes']} expert episodes of {ENV} and ingesting them")
        store, ref, num_steps = make_dataset(Path(temp), budget["episodes"])
        specs = specs_from_schema(store.manifest(ref).schema, num_actions=2)
        config = BCConfig(batch_size=BATCH_SIZE, hidden_sizes=HIDDEN_SIZES)
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
        "workload": {"agent": "bc", "batch_size": BATCH_SIZE, "hidden_sizes": list(HIDDEN_SIZES),
                     "dataset": f"{ENV} expert, {num_steps} steps"},
        "store_updates_per_s": round(store_rate, 1), "ceiling_updates_per_s": round(ceiling_rate, 1),
        "baseline": "same update step on a constant in-memory batch (data-free ceiling)",
        "ratio_vs_baseline": round(ratio, 3), "target_ratio": TARGET_RATIO, "meets_target": ratio >= TARGET_RATIO,
        "rounds": {name: [round(r, 1) for r in values] for name, values in rates.items()},
    }))


if __name__ == "__main__":
    main()
