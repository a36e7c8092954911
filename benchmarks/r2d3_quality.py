"""R2D3 quality: online on the T-maze memory task, with and without demonstrations, vs feed-forward DQfD.

Rows (every one an online run through `rlstore.agents.online.run`, i.e. what `rlstore run` does: a Reverb
replay process, a learner process and one actor process on loopback):
  r2d3   `run r2d3` with 10 expert demonstration episodes (recorded by the scripted expert as npz
         logs, ingested through the Beam pipeline), demo ratio 0.25
  r2d2   the same agent and budget without demonstrations (R2D2)
  dqfd   `run dqfd` (feed-forward MLP Q-network, margin loss, the same demonstrations and ratio)
Budget: 30,000 env steps per run, tmaze:length=10; the final checkpoint is evaluated on 100
episodes. Success rate = mean return (a T-maze episode scores 1 for the right arm, else 0;
chance is 0.5 for an agent that reaches the junction, a memoryless one can do no better).
Targets (the issue's): r2d3 >= 0.9; r2d2 <= 0.6; dqfd <= 0.6 (means over the seeds).

The T-maze's corridor (which action advances from each cell) is drawn from the environment's
seed, so every run plays, and is evaluated on, the maze of the seed the demonstrations were
recorded with (`env_seed` 0; the cue sequence of the evaluation episodes is the run's too).
`--quick` runs one seed of r2d3 and r2d2 on a small budget (the JSON says so and gives the budget).

Prints one JSON line on stdout; progress goes to stderr.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import choose_budget, log  # noqa: E402

from rlstore.quiet import silence  # noqa: E402

silence()  # before TensorFlow

ENV = "tmaze:length=10"
FULL = {"seeds": [0, 1], "env_steps": 30_000, "demos": 10, "eval_episodes": 100, "variants": ["r2d3", "r2d2", "dqfd"]}
QUICK = {"seeds": [0], "env_steps": 1_000, "demos": 10, "eval_episodes": 20, "variants": ["r2d3", "r2d2"]}
R2D3 = {"demo_ratio": 0.25, "gamma": 0.9, "samples_per_insert": 64.0, "target_update_period": 100}
DQFD = {"demo_ratio": 0.25, "gamma": 0.9, "batch_size": 64, "hidden_sizes": (64, 64), "pretrain_steps": 500,
        "epsilon": 0.1, "min_replay_size": 200, "target_update_period": 100}
VARIANTS = {"r2d3": ("r2d3", True, R2D3), "r2d2": ("r2d3", False, R2D3), "dqfd": ("dqfd", True, DQFD)}
TARGETS = {"r2d3": (">=", 0.9), "r2d2": ("<=", 0.6), "dqfd": ("<=", 0.6)}


def online_run(variant: str, store, demos: str, root: Path, budget: dict, seed: int) -> dict:
    """One online run of `variant`; its final evaluation and what it cost."""
    from rlstore.agents.online.run import OnlineOptions, run

    agent, with_demos, config = VARIANTS[variant]
    options = OnlineOptions(env=ENV, env_steps=budget["env_steps"], out=root / f"{variant}-{seed}",
                            demos=demos if with_demos else None, seed=seed, env_seed=0,
                            eval_every_env_steps=max(budget["env_steps"] // 5, 1), eval_episodes=20,
                            final_eval_episodes=budget["eval_episodes"])
    summary = run(agent, store, options, config)
    final = summary["final_evaluation"]
    return {"success": final["return_mean"], "env_steps": summary["env_steps"],
            "learner_steps": summary["learner_steps"], "seconds": summary["seconds"]}


def main() -> None:
    quick, budget = choose_budget(__doc__, QUICK, FULL)
    started = time.perf_counter()
    from rlstore.datasets.demonstrations import ingest_expert_demos
    from rlstore.store import Store

    with tempfile.TemporaryDirectory(prefix="r2d3_quality_") as tmp:
        root = Path(tmp)
        store = Store(root / "store")
        log(f"recording {budget['demos']} expert episodes of {ENV} (env seed 0) and ingesting them")
        manifest = ingest_expert_demos(store, "tmaze_expert", ENV, budget["demos"], root / "logs", seed=0)
        demos = f"{manifest.name}@{manifest.version}"
        rows = {variant: [] for variant in budget["variants"]}
        for seed in budget["seeds"]:
            for variant in budget["variants"]:
                log(f"seed {seed}: {variant}, {budget['env_steps']} env steps")
                result = online_run(variant, store, demos, root, budget, seed)
                log(f"seed {seed}: {variant} success {result['success']:.2f} ({result['learner_steps']} updates, "
                    f"{result['seconds']:.0f} s)")
                rows[variant].append({"seed": seed, **result})
    means = {variant: sum(r["success"] for r in results) / len(results) for variant, results in rows.items()}
    meets = {variant: (means[variant] >= bound if op == ">=" else means[variant] <= bound)
             for variant, (op, bound) in TARGETS.items() if variant in means}
    print(json.dumps({
        "benchmark": "r2d3_quality", "quick": quick, "env": ENV, "env_seed": 0,
        "budget": {"env_steps_per_run": budget["env_steps"], "seeds": budget["seeds"], "demo_episodes": budget["demos"],
                   "eval_episodes": budget["eval_episodes"], "variants": budget["variants"], "actors": 1},
        "configs": {"r2d3": R2D3, "dqfd": DQFD},
        "metric": "final success rate (mean return)", "targets": {v: f"{op} {b}" for v, (op, b) in TARGETS.items()},
        "runs": rows, "means": means, "meets_target": meets,
        "r2d3_over_r2d2": means["r2d3"] - means["r2d2"],
        "r2d3_over_dqfd": means["r2d3"] - means["dqfd"] if "dqfd" in means else None,
        "load_average": os.getloadavg()[0], "seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
