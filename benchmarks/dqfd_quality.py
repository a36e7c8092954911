"""DQfD quality: offline on catch against BC, online on deep_sea and MountainCar (`rlstore run dqfd`).

Rows:
  catch_offline       expert demonstrations of `catch` recorded by the scripted expert as npz logs and
                      ingested through the Beam pipeline; DQfD (n=10, margin 0.8, λ = 1, 1, 1e-5, dueling,
                      target update every 250) and BC, both with the same updates, batch 256, MLP 256x256,
                      and the same seeds; 100 evaluation episodes per seed.
                      Target (the issue's): DQfD at least as good as BC (mean success over the seeds).
  deep_sea_dqfd       `deep_sea:size=20` (a random policy reaches the reward with probability 2^-20), 5
                      expert demonstration episodes, DQfD online (rlstore.agents.online: a replay process, a
                      learner, one actor) for 20,000 env steps. Target: mean eval return >= 0.9.
  deep_sea_ratio_0    the same run with demo ratio 0: no demonstrations at all, i.e. plain prioritized
                      n-step double DQN with ε-greedy exploration, the control. Target: <= 0.05.
  mountain_car_dqfd   `gym:MountainCar-v0`, 10 scripted-expert demonstration episodes (the expert scores
                      about -120), DQfD online for 50,000 env steps. Target: mean eval return >= -130.

Online rows report, per seed, the final checkpoint's mean return on fresh evaluation episodes (and
the learning curve of the run: env steps vs return). Every environment of an online row is built
with env seed 0, the seed the demonstrations were recorded with: for deep_sea that seed IS the
task (its hidden action mapping); its dynamics are deterministic, so its evaluation episodes are
identical to each other. MountainCar's evaluation uses other seeds than the demonstrations' (its
seed only draws initial states). Demonstrations go through the real path: scripted expert → npz
logs → Beam ingest.

  minatar tasks       breakout, freeway, space_invaders: `gym:MinAtar/<Game>-v1` (10x10xn boolean frames,
                      the conv torso; the `minatar` preset: rlstore/agents/presets.py), 20 expert
                      demonstration episodes; variants `dqfd` (the preset: demo ratio 0.5, 15,000 pre-training updates) and `ratio_0`
                      (`--demo-ratio 0`, no demonstrations: prioritized double DQN), 100,000 env steps,
                      seeds 0-2 (issue 13). Figures: the mean evaluation return over the run (5
                      evaluations of 10 episodes from env seed 5,000 + seed, plus the final one of 30
                      episodes from 10,000 + seed), and the final return. Targets: dqfd's mean > ratio_0's
                      on each game; dqfd's final return >= half the demonstrators'. One PNG per game.

`--tasks legacy` runs the first four rows (seeds 0-2), `--tasks breakout --variants dqfd --seeds 0`
one MinAtar row; `--quick` runs one seed of deep_sea_dqfd on a reduced budget (the JSON says so).

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

FULL = {"seeds": [0, 1, 2], "updates": 1000, "episodes": 100, "demos": 100,
        "online_rows": ["deep_sea_dqfd", "deep_sea_ratio_0", "mountain_car_dqfd"], "online_scale": 1.0}
QUICK = {"seeds": [0], "online_rows": ["deep_sea_dqfd"], "online_scale": 0.1}
CONFIGS = {"bc": {"batch_size": 256, "hidden_sizes": (256, 256)},
           "dqfd": {"batch_size": 256, "hidden_sizes": (256, 256), "target_update_period": 250}}
EVAL_SEED = 1_000
DEEP_SEA_CONFIG = {"batch_size": 64, "hidden_sizes": (64, 64), "pretrain_steps": 1000}
ONLINE = {
    # row: environment, demonstration episodes, env steps, DQfD config, target (">=" or "<=", value), eval seed
    "deep_sea_dqfd": {"env": "deep_sea:size=20", "demos": 5, "env_steps": 20_000,
                      "config": {**DEEP_SEA_CONFIG, "demo_ratio": 0.25}, "target": (">=", 0.9), "eval_seed": 0},
    "deep_sea_ratio_0": {"env": "deep_sea:size=20", "demos": 0, "env_steps": 20_000,
                         "config": {**DEEP_SEA_CONFIG, "demo_ratio": 0.0}, "target": ("<=", 0.05), "eval_seed": 0},
    "mountain_car_dqfd": {"env": "gym:MountainCar-v0", "demos": 10, "env_steps": 50_000,
                          # A target sync every 250 updates (not 1,000) lets the online TD learning repair the
                          # few states where imitation alone fails within the budget.
                          "config": {"batch_size": 128, "hidden_sizes": (256, 256), "pretrain_steps": 3000,
                                     "target_update_period": 250, "demo_ratio": 0.25},
                          "target": (">=", -130.0), "eval_seed": EVAL_SEED},
}
ONLINE_EVAL_EPISODES = 30
MINATAR = {"breakout": "gym:MinAtar/Breakout-v1", "freeway": "gym:MinAtar/Freeway-v1",
           "space_invaders": "gym:MinAtar/SpaceInvaders-v1"}
MINATAR_BUDGET = {"demos": 20, "env_steps": 100_000}
TASKS = {"legacy": None, **MINATAR}
VARIANTS = {"dqfd": {}, "ratio_0": {"demo_ratio": 0.0}}


def success(agent: str, store, ref: str, run_dir: Path, budget: dict, seed: int) -> dict:
    """Trains `agent` on `ref` and returns its catch success rate (return +1 means caught)."""
    from rlstore.agents.evaluation import evaluate
    from rlstore.agents.runs import load_trained
    from rlstore.agents.training import Schedule, train

    summary = train(agent, store, ref, run_dir, Schedule(steps=budget["updates"], log_every=100),
                    config=CONFIGS[agent], seed=seed, progress=False)
    trained = load_trained(run_dir)
    returns = evaluate(trained.make_actor, "catch", budget["episodes"], seed=EVAL_SEED + seed,
                       specs=trained.specs)["returns"]
    return {"success": sum(r == 1.0 for r in returns) / len(returns), "final_loss": summary["metrics"]["loss"],
            "train_seconds": summary["seconds"]}


def catch_offline_row(store, root: Path, budget: dict) -> dict:
    from rlstore.datasets.demonstrations import ingest_expert_demos

    log(f"recording {budget['demos']} expert episodes of catch and ingesting them (--format npz)")
    manifest = ingest_expert_demos(store, "catch_expert", "catch", budget["demos"], root / "catch_logs")
    ref = f"{manifest.name}@{manifest.version}"
    seeds = []
    for seed in budget["seeds"]:
        log(f"seed {seed}: dqfd and bc, {budget['updates']} updates each, {budget['episodes']} eval episodes")
        entry = {"seed": seed}
        for agent in ("dqfd", "bc"):
            entry[agent] = success(agent, store, ref, root / f"{agent}-{seed}", budget, seed)
        seeds.append(entry)
    dqfd = sum(e["dqfd"]["success"] for e in seeds) / len(seeds)
    bc = sum(e["bc"]["success"] for e in seeds) / len(seeds)
    return {"row": "catch_offline", "dataset": ref, "num_steps": manifest.num_steps,
            "training": f"{budget['updates']} updates, batch 256, MLP 256x256, for each agent",
            "evaluation": f"catch, {budget['episodes']} episodes per seed", "metric": "success",
            "target": "dqfd mean success >= bc mean success", "seeds": seeds,
            "dqfd_mean": dqfd, "bc_mean": bc, "meets_target": dqfd >= bc}


def online_row(store, root: Path, name: str, budget: dict, demo_refs: dict) -> dict:
    """One online row: `rlstore run dqfd` (rlstore.agents.online.run) per seed, then the final checkpoint evaluated."""
    from rlstore.agents.evaluation import evaluate
    from rlstore.agents.logging import read_csv
    from rlstore.agents.online.run import OnlineOptions, run
    from rlstore.agents.runs import load_trained
    from rlstore.datasets.demonstrations import ingest_expert_demos

    spec = ONLINE[name]
    env_steps = max(int(spec["env_steps"] * budget["online_scale"]), 1000)
    config = dict(spec["config"])
    if budget["online_scale"] < 1:
        config["pretrain_steps"] = min(config["pretrain_steps"], 500)
    demos = None
    if spec["demos"]:
        key = (spec["env"], spec["demos"])
        if key not in demo_refs:
            dataset = f"{name}_expert"
            log(f"{name}: recording {spec['demos']} expert episodes of {spec['env']} and ingesting them (--format npz)")
            manifest = ingest_expert_demos(store, dataset, spec["env"], spec["demos"], root / f"{dataset}_logs", seed=0)
            demo_refs[key] = (f"{manifest.name}@{manifest.version}", manifest)
        demos = demo_refs[key][0]
    seeds = []
    for seed in budget["seeds"]:
        log(f"{name}, seed {seed}: {env_steps} env steps, demos {demos or 'none'}, ratio {config['demo_ratio']}")
        out = root / f"{name}-{seed}"
        options = OnlineOptions(env=spec["env"], env_steps=env_steps, out=out, demos=demos, seed=seed, env_seed=0,
                                eval_every_env_steps=env_steps // 5, eval_episodes=5, final_eval_episodes=5)
        summary = run("dqfd", store, options, config)
        trained = load_trained(out)
        eval_seed = spec["eval_seed"] + seed if spec["eval_seed"] else 0  # deep_sea: seed 0 is the task itself
        result = evaluate(trained.make_actor, spec["env"], ONLINE_EVAL_EPISODES, seed=eval_seed, specs=trained.specs)
        curve = [(int(row["step"]), round(row["return_mean"], 3)) for row in read_csv(out / "logs" / "eval.csv")]
        seeds.append({"seed": seed, "return_mean": result["return_mean"], "return_std": result["return_std"],
                      "env_steps": summary["env_steps"], "updates": summary["learner_steps"],
                      "run_seconds": summary["seconds"], "curve_env_steps_vs_return": curve})
        log(f"  return {result['return_mean']:.3f} ± {result['return_std']:.3f} after {summary['env_steps']} env "
            f"steps, {summary['learner_steps']} updates, {summary['seconds']} s")
    mean = sum(entry["return_mean"] for entry in seeds) / len(seeds)
    relation, value = spec["target"]
    meets = mean >= value if relation == ">=" else mean <= value
    row = {"row": name, "env": spec["env"], "demos": demos, "demo_episodes": spec["demos"],
           "demo_return_mean": demo_refs[(spec["env"], spec["demos"])][1].stats.returns.mean
           if demos else None,
           "env_steps_budget": env_steps, "config": config,
           "evaluation": f"{ONLINE_EVAL_EPISODES} episodes per seed, env seed "
                         + (f"{spec['eval_seed']} + seed" if spec["eval_seed"] else "0 (the task)"),
           "target": f"mean return {relation} {value}", "seeds": seeds, "mean": mean, "meets_target": meets}
    if not meets:
        row["missed_by"] = round(abs(mean - value), 4)
    return row


def minatar_task(store, root: Path, task: str, args) -> dict:
    """One MinAtar game: each variant and seed an online run; the curve PNG; figures against the targets."""
    env = MINATAR[task]
    env_steps = args.env_steps or MINATAR_BUDGET["env_steps"]
    demos, demo_return = record_demos(store, root, env, MINATAR_BUDGET["demos"])
    runs: dict[str, list[dict]] = {}
    for seed in args.seeds:
        for variant in args.variants:
            log(f"{task}, seed {seed}: {variant}, {env_steps} env steps")
            result = online_run("dqfd", store, env, demos if variant == "dqfd" else None, root / f"{task}-{variant}-{seed}",
                                env_steps, seed, VARIANTS[variant], eval_points=5, eval_episodes=10,
                                final_episodes=ONLINE_EVAL_EPISODES)
            log(f"  mean return over the run {result['curve_mean_return']}, final {result['final_return']:.2f} "
                f"({result['learner_steps']} updates, {result['seconds']:.0f} s, preset {result['preset']})")
            runs.setdefault(variant, []).append(result)
    means = {variant: sum(r["curve_mean_return"] for r in rs) / len(rs) for variant, rs in runs.items()}
    finals = {variant: sum(r["final_return"] for r in rs) / len(rs) for variant, rs in runs.items()}
    meets = {}
    if "dqfd" in runs:
        meets["half_the_demonstrators"] = finals["dqfd"] >= demo_return / 2
        if "ratio_0" in runs:
            meets["dqfd_beats_ratio_0"] = means["dqfd"] > means["ratio_0"]
    return {"task": task, "env": env, "demos": demos, "demo_episodes": MINATAR_BUDGET["demos"],
            "demo_env_seeds": f"0..{MINATAR_BUDGET['demos'] - 1}", "demo_return_mean": demo_return,
            "env_steps_per_run": env_steps, "seeds": args.seeds, "variants": {v: VARIANTS[v] for v in runs},
            "curve_png": plot_task(task, env, runs, args.png_dir, {"expert": demo_return}),
            "runs": without_rows(runs), "mean_return_over_run": means, "final_return": finals, "meets": meets}


def main() -> None:
    args = parse_rows(__doc__, TASKS, VARIANTS, "legacy", ("dqfd",))
    budget = dict(QUICK if args.quick else FULL, seeds=args.seeds)

    from rlstore.store import Store

    started = time.perf_counter()
    rows, games = [], []
    with tempfile.TemporaryDirectory(prefix="rlstore-bench-dqfd-") as temp:
        root = Path(temp)
        store = Store(root / "store")
        if "legacy" in args.tasks:
            rows = [] if args.quick else [catch_offline_row(store, root, budget)]
            demo_refs: dict = {}
            rows += [online_row(store, root, name, budget, demo_refs) for name in budget["online_rows"]]
        games = [minatar_task(store, root, task, args) for task in args.tasks if task in MINATAR]
    print(json.dumps({
        "benchmark": "dqfd_quality", "quick": args.quick,
        "note": "quick mode: one online row, one seed, a tenth of the env steps: figures are not the issue's "
                "targets" if args.quick else "rows as selected",
        "budget": budget, "configs": CONFIGS, "rows": rows, "minatar": games,
        "meets_targets": all(row["meets_target"] for row in rows) and all(all(g["meets"].values()) for g in games),
        "load_average": os.getloadavg(), "seconds": round(time.perf_counter() - started, 1),
    }))


if __name__ == "__main__":
    main()
