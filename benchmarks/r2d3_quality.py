"""R2D3 quality: online on memory tasks (MiniGrid memory, the T-maze), with and without demonstrations, vs feed-forward DQfD.

Variants (every one an online run through `rlstore.agents.online.run`, i.e. what `rlstore run`
does: a Reverb replay process, a learner process and one actor process on loopback), all with
the CLI's defaults and the per-suite preset the env spec selects (`memory` or, on the
Random sizes, `memory_random` for r2d3: rlstore/agents/presets.py), the same env-step budget and the same seeds:
  r2d3   `run r2d3 --demos D` with the task's expert demonstrations (scripted expert → npz logs →
         Beam ingest; every hidden cue shown equally often)
  r2d2   the same agent without demonstrations (R2D2)
  dqfd   `run dqfd --demos D`: a feed-forward Q-network (no memory), margin loss, same demos
Tasks:
  memory_s9          gym:MiniGrid-MemoryS9-v0, 20 demos (the quick one)
  memory_s13random   gym:MiniGrid-MemoryS13Random-v0, 20 demos
  tmaze              tmaze:length=10, 10 demos (the DQfD control keeps its earlier settings)
The figure is the final checkpoint's success rate on 100 episodes from env seed 10,000 + seed
(a MiniGrid episode succeeds with a positive return, a T-maze one with the cued arm; chance is
0.5 for an agent that reaches the junction). Targets (issue 13): r2d3 >= 0.9; r2d2 <= 0.3
(tmaze: <= 0.6); dqfd <= 0.6. Seeds as in benchmarks/online_rows.py: demonstrations 0..N-1,
never evaluated on. Each task gets `benchmark_curves/<task>.png` (eval return vs env steps).

    python benchmarks/r2d3_quality.py --tasks memory_s9 --variants r2d3 --seeds 0   # one row, one seed
    python benchmarks/r2d3_quality.py --quick   # memory_s9, r2d3, seed 0: a smoke run (QUICK below)

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

from benchmarks.common import log  # noqa: E402
from benchmarks.online_rows import online_run, parse_rows, plot_task, record_demos, without_rows  # noqa: E402

from rlstore.quiet import silence  # noqa: E402

silence()  # before TensorFlow

TASKS = {
    # 50k env steps: at 30k the junction rule was still being learned (seeds 0-2 ended at 0.84-0.87)
    "memory_s9": {"env": "gym:MiniGrid-MemoryS9-v0", "demos": 20, "env_steps": 50_000, "r2d2_target": 0.3},
    "memory_s13random": {"env": "gym:MiniGrid-MemoryS13Random-v0", "demos": 20, "env_steps": 100_000,
                         "r2d2_target": 0.3},
    "tmaze": {"env": "tmaze:length=10", "demos": 10, "env_steps": 30_000, "r2d2_target": 0.6,
              "dqfd": {"demo_ratio": 0.25, "gamma": 0.9, "batch_size": 64, "hidden_sizes": (64, 64),
                       "pretrain_steps": 500, "epsilon": 0.1, "min_replay_size": 200, "target_update_period": 100}},
}
VARIANTS = {"r2d3": ("r2d3", True), "r2d2": ("r2d3", False), "dqfd": ("dqfd", True)}
# --quick checks that the whole path runs (record, ingest, replay, pre-training, acting,
# learning, evaluation) in under a minute; its figures are not the targets. One
# demonstration per cue, 1,000 env steps, 100 pre-training updates instead of the preset's.
QUICK = {"demos": 4, "env_steps": 1_000, "config": {"pretrain_steps": 100}, "eval_episodes": 5,
         "final_episodes": 10}
EVAL_EPISODES = 100


def main() -> None:
    args = parse_rows(__doc__, TASKS, VARIANTS, "memory_s9", ("r2d3",))
    started = time.perf_counter()
    from rlstore.store import Store

    tasks = {}
    with tempfile.TemporaryDirectory(prefix="r2d3_quality_") as tmp:
        root = Path(tmp)
        store = Store(root / "store")
        for task in args.tasks:
            spec = TASKS[task]
            env_steps = QUICK["env_steps"] if args.quick else args.env_steps or spec["env_steps"]
            demo_episodes = QUICK["demos"] if args.quick else spec["demos"]
            final_episodes = QUICK["final_episodes"] if args.quick else EVAL_EPISODES
            demos, demo_return = record_demos(store, root, spec["env"], demo_episodes)
            runs: dict[str, list[dict]] = {}
            for seed in args.seeds:
                for variant in args.variants:
                    agent, with_demos = VARIANTS[variant]
                    config = spec.get(variant, {}) if variant == "dqfd" else {}
                    if args.quick:
                        config = {**config, **QUICK["config"]}
                    log(f"{task}, seed {seed}: {variant}, {env_steps} env steps")
                    result = online_run(agent, store, spec["env"], demos if with_demos else None,
                                        root / f"{task}-{variant}-{seed}", env_steps, seed, config,
                                        eval_points=1 if args.quick else 5,
                                        eval_episodes=QUICK["eval_episodes"] if args.quick else 20,
                                        final_episodes=final_episodes)
                    log(f"{task}, seed {seed}: {variant} success {result['final_success_rate']:.2f} "
                        f"({result['learner_steps']} updates, {result['seconds']:.0f} s, preset {result['preset']})")
                    runs.setdefault(variant, []).append(result)
            means = {variant: sum(r["final_success_rate"] for r in rs) / len(rs) for variant, rs in runs.items()}
            targets = {"r2d3": (">=", 0.9), "r2d2": ("<=", spec["r2d2_target"]), "dqfd": ("<=", 0.6)}
            tasks[task] = {
                "env": spec["env"], "demos": demos, "demo_episodes": demo_episodes, "demo_env_seeds":
                f"0..{demo_episodes - 1} (and resets that balance the cues)", "demo_return_mean": demo_return,
                "env_steps_per_run": env_steps, "seeds": args.seeds,
                "eval": f"final checkpoint, {final_episodes} episodes from env seed 10,000 + seed",
                "dqfd_config": spec.get("dqfd", {}),
                "curve_png": plot_task(task, spec["env"], runs, args.png_dir, {"expert": demo_return}),
                "runs": without_rows(runs), "mean_success": means,
                "targets": {v: f"{op} {bound}" for v, (op, bound) in targets.items()},
                "meets_target": {v: (means[v] >= bound if op == ">=" else means[v] <= bound)
                                 for v, (op, bound) in targets.items() if v in means}}
    print(json.dumps({
        "benchmark": "r2d3_quality", "quick": args.quick,
        "note": f"quick: a smoke run, not the issue's budget ({QUICK})" if args.quick else "rows as selected",
        "tasks": tasks, "load_average": os.getloadavg(), "seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
