"""BC quality with seeds: the rows of the issue's quality table, each trained and evaluated here.

Rows:
  cartpole_imitation  `/work/shared/external/imitation_cartpole_expert.npz` (a PPO expert's rollouts
                      saved by the `imitation` library) ingested through the Beam pipeline
                      (`--format imitation`, time limit 500); BC with 5,000 updates, batch 256, MLP
                      256x256; 20 evaluation episodes of gymnasium CartPole-v1 per seed.
                      Target: mean return >= 475 for every seed.
  catch_expert        expert demonstrations of `catch` recorded by the scripted expert as npz logs and
                      ingested through the pipeline; BC as above with 1,000 updates; 100 evaluation
                      episodes per seed. Target: success (ball caught, return +1) >= 95% for every seed.

Baseline, measured in the same run: the demonstrations themselves (mean episode return of the
dataset, from its manifest); each seed's ratio is BC's figure over the demonstrator's. A random
policy is evaluated too, for scale. Evaluation seeds differ from the seeds the data was made with.
`--quick` cuts updates, seeds and episodes (the JSON says so and gives the budget).

Prints one JSON line on stdout; progress goes to stderr.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import choose_budget, log  # noqa: E402

from rlstore.quiet import silence  # noqa: E402

silence()  # before TensorFlow

from rlstore.datasets.external import external_file  # noqa: E402

CARTPOLE_FILE = external_file("imitation_cartpole_expert.npz")
CARTPOLE_ENV = "gym:CartPole-v1"
FULL = {"seeds": [0, 1, 2], "cartpole_updates": 5000, "cartpole_episodes": 20, "catch_updates": 1000,
        "catch_episodes": 100, "catch_demos": 100}
QUICK = {"seeds": [0], "cartpole_updates": 1500, "cartpole_episodes": 5, "catch_updates": 300,
         "catch_episodes": 50, "catch_demos": 50}
CONFIG = {"batch_size": 256, "hidden_sizes": (256, 256)}
EVAL_SEED = 1_000


def train_and_evaluate(store, ref: str, run_dir: Path, env: str, updates: int, episodes: int, seed: int) -> dict:
    from rlstore.agents.evaluation import evaluate
    from rlstore.agents.runs import load_trained
    from rlstore.agents.training import Schedule, train

    summary = train("bc", store, ref, run_dir, Schedule(steps=updates, log_every=250), config=CONFIG, seed=seed)
    agent = load_trained(run_dir)
    result = evaluate(agent.make_actor, env, episodes, seed=EVAL_SEED + seed, specs=agent.specs)
    return {"seed": seed, "return_mean": result["return_mean"], "return_std": result["return_std"],
            "returns": result["returns"], "final_loss": summary["metrics"]["loss"], "train_seconds": summary["seconds"]}


def random_return(env: str, episodes: int) -> float:
    from rlstore.agents.evaluation import evaluate
    from rlstore.envs import make_policy

    return evaluate(lambda e: make_policy("random", env, e, seed=EVAL_SEED), env, episodes, seed=EVAL_SEED)["return_mean"]


def cartpole_row(store, root: Path, budget: dict) -> dict:
    from rlstore.pipelines.ingest import ingest

    log(f"ingesting {CARTPOLE_FILE.name} (--format imitation)")
    manifest = ingest(store, "cartpole_imitation", [str(CARTPOLE_FILE)], format="imitation",
                      format_options={"max_episode_steps": 500})
    ref, data_return = f"{manifest.name}@{manifest.version}", manifest.stats.returns.mean
    seeds = []
    for seed in budget["seeds"]:
        log(f"cartpole seed {seed}: {budget['cartpole_updates']} updates, {budget['cartpole_episodes']} eval episodes")
        seeds.append(train_and_evaluate(store, ref, root / f"cartpole-{seed}", CARTPOLE_ENV, budget["cartpole_updates"],
                                        budget["cartpole_episodes"], seed))
    for entry in seeds:
        entry["ratio_vs_baseline"] = round(entry["return_mean"] / data_return, 3)
    worst = min(entry["return_mean"] for entry in seeds)
    return {"row": "cartpole_imitation", "dataset": ref, "num_steps": manifest.num_steps,
            "training": f"{budget['cartpole_updates']} updates, batch 256, MLP 256x256",
            "evaluation": f"{CARTPOLE_ENV}, {budget['cartpole_episodes']} episodes per seed",
            "metric": "return_mean", "target": ">= 475 for each seed", "baseline_demonstrations": data_return,
            "random_policy": random_return(CARTPOLE_ENV, budget["cartpole_episodes"]),
            "seeds": seeds, "worst_seed": worst, "meets_target": worst >= 475}


def catch_row(store, root: Path, budget: dict) -> dict:
    from rlstore.datasets.demonstrations import ingest_expert_demos

    log(f"recording {budget['catch_demos']} expert episodes of catch and ingesting them (--format npz)")
    manifest = ingest_expert_demos(store, "catch_expert", "catch", budget["catch_demos"], root / "catch_logs")
    ref = f"{manifest.name}@{manifest.version}"
    data_success = (manifest.stats.returns.mean + 1) / 2  # returns are +1 (caught) or -1
    seeds = []
    for seed in budget["seeds"]:
        log(f"catch seed {seed}: {budget['catch_updates']} updates, {budget['catch_episodes']} eval episodes")
        entry = train_and_evaluate(store, ref, root / f"catch-{seed}", "catch", budget["catch_updates"],
                                   budget["catch_episodes"], seed)
        entry["success"] = sum(r == 1.0 for r in entry["returns"]) / len(entry["returns"])
        entry["ratio_vs_baseline"] = round(entry["success"] / data_success, 3)
        seeds.append(entry)
    worst = min(entry["success"] for entry in seeds)
    return {"row": "catch_expert", "dataset": ref, "num_steps": manifest.num_steps,
            "training": f"{budget['catch_updates']} updates, batch 256, MLP 256x256",
            "evaluation": f"catch, {budget['catch_episodes']} episodes per seed",
            "metric": "success", "target": ">= 0.95 for each seed", "baseline_demonstrations": data_success,
            "random_policy": (random_return("catch", budget["catch_episodes"]) + 1) / 2,
            "seeds": seeds, "worst_seed": worst, "meets_target": worst >= 0.95}


def main() -> None:
    quick, budget = choose_budget(__doc__, QUICK, FULL)

    from rlstore.store import Store

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rlstore-bench-bc-") as temp:
        root = Path(temp)
        store = Store(root / "store")
        rows = [cartpole_row(store, root, budget), catch_row(store, root, budget)]
    for row in rows:
        for entry in row["seeds"]:
            entry.pop("returns")
    print(json.dumps({
        "benchmark": "bc_quality", "quick": quick,
        "note": "quick mode: reduced budget, figures are not the issue's targets" if quick else "full budget",
        "budget": budget, "baseline": "the demonstrations (dataset mean return / success), measured in this run",
        "rows": rows, "meets_targets": all(row["meets_target"] for row in rows),
        "seconds": round(time.perf_counter() - started, 1),
    }))


if __name__ == "__main__":
    main()
