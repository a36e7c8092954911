"""Actors that cut wall-clock time: DQfD online to a return threshold with 1 and with 4 actor processes.

Workload: `rlstore run dqfd` on Catch with a simulator's step cost (`catch:step_ms=30`: every
env step takes 30 ms, as a physics simulator or a robot would; rlstore.envs.step_cost), 2
expert demonstration episodes (demo ratio 0.25, no pre-training, so the agent must learn
online), the same config and the same samples-per-insert ratio (16) in both arms, 3 seeds per
arm (run seed = env seed; the arms alternate seed by seed). Every actor explores with the same
ε = 0.1 and a random stream of its own, so the two arms differ only in how many actors play.
Acme's claim (Hoffman et al. 2020): with 4 actors an agent takes under half the wall-clock time
to learn, with about as many env steps.

Each run stops at its first evaluation that reaches the threshold (`rlstore run
--stop-at-return`; the env-step budget is only a cap). Actor 0 evaluates the greedy policy
every `eval_every` env steps (counted over all actors) on 10 episodes of Catch without the step
cost, stamping each row of logs/eval.csv with the seconds since acting started. Per run:
  * env steps and seconds (since acting started, i.e. after start-up) to the threshold. The
    evaluation counts env steps as actor 0's own times K; actor 0 also spends time evaluating,
    so with 4 actors the others play more: the reported env steps (and the curves') are scaled
    by the true total over that estimate at the stop (`env_steps_undercount`, 1.0 for one actor);
  * env steps/s and learner updates/s while acting;
  * the achieved samples per insert of the agent's replay table (the replay server's own
    rate-limiter counts: samples / inserts it completed) against the configured 16.
Per arm: the median over the seeds (a seed that never reaches the threshold counts as slowest).
Figures: `wall_time_ratio_1_vs_4_actors` (1 actor's median seconds / 4 actors'; target >= 2)
and `env_steps_ratio_4_vs_1` (4 actors' median env steps / 1 actor's; target <= 1.3), also per
seed. Every run's learning curve goes into one PNG, against env steps and against seconds.

Why 30 ms: a sleeping step leaves the CPU free, so 4 actors overlap even on 2 cores, but each
step still costs an actor a few ms of CPU (policy, adder), and the learner must keep up with 4x
the inserts at the same ratio (16 samples per insert over 48 agent rows a batch: one update per
3 env steps). At 10 ms on a loaded 2-core machine the 4 actors and the learner were CPU-bound
(138 env steps/s, not 4 x 68): when the learner falls behind, actors play up to
`min_replay_size` transitions ahead of it with an older policy, which costs env steps. At 30 ms
4 actors need at most ~45 updates/s, a fraction of what the learner manages there (~160/s).

`--quick` (under a minute on an idle machine) runs the same code with one seed, a 5 ms step and
a threshold of 0.0 (half the balls caught, against -0.8 untrained): ~1,000 env steps per arm.
Start-up of the runs' processes weighs more there, and a 5 ms step leaves the 4 actors and the
learner closer to CPU-bound, so its ratio is a smoke figure, not the target's measurement.
Prints one JSON line on stdout; progress goes to stderr.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import log, quick_parser  # noqa: E402

from rlstore.quiet import silence  # noqa: E402

silence()  # before TensorFlow

TASK = "catch"
DEMO_EPISODES = 2
CONFIG = {"demo_ratio": 0.25, "pretrain_steps": 0, "batch_size": 64, "hidden_sizes": (64, 64),
          "learning_rate": 1e-3, "samples_per_insert": 16.0, "min_replay_size": 200, "target_update_period": 100,
          "n_step": 3, "epsilon": 0.1, "variable_update_period": 10}
# threshold: the mean return over the evaluation episodes to reach (Catch: +1 caught, -1 missed; the
# untrained policy scores -0.8 here): 0.8 is 9 of 10 caught, 0.0 half of them.
# env_steps is a cap: a run stops at its first evaluation that reaches the threshold.
FULL = {"step_ms": 30, "threshold": 0.8, "seeds": (0, 1, 2), "env_steps": 4000, "eval_every": 150,
        "eval_episodes": 10}
# --quick must finish within a minute, most of which goes to starting, stopping and evaluating the
# 3 + 6 processes of its two runs, so it plays ~1,000 env steps per arm at a 5 ms step (seed 0
# reached 0.0 after ~1,200 env steps with 1 actor, ~800 with 4; at 10 ms the whole run took 64 s
# on an idle machine).
QUICK = {"step_ms": 5, "threshold": 0.0, "seeds": (0,), "env_steps": 2000, "eval_every": 150, "eval_episodes": 10}
ARMS = (1, 4)
TARGETS = {"wall_time_ratio_1_vs_4_actors": 2.0, "env_steps_ratio_4_vs_1": 1.3}


def one_run(store, demos: str, out: Path, env: str, actors: int, seed: int, budget: dict) -> dict:
    from rlstore.agents.logging import read_csv
    from rlstore.agents.online.run import OnlineOptions, run

    options = OnlineOptions(env=env, env_steps=budget["env_steps"], out=out, demos=demos, actors=actors, seed=seed,
                            env_seed=seed, eval_every_env_steps=budget["eval_every"],
                            eval_episodes=budget["eval_episodes"], final_eval_episodes=budget["eval_episodes"],
                            stop_at_return=budget["threshold"])
    started = time.perf_counter()
    summary = run("dqfd", store, options, CONFIG)
    wall = time.perf_counter() - started
    rows = read_csv(out / "logs" / "eval.csv")
    replay = json.loads((out / "logs" / "replay.json").read_text())["transitions"]  # written as the server stops
    actor_logs = [json.loads(path.read_text()) for path in sorted((out / "logs").glob("actor-*.json"))]
    acting = max(entry["acting_seconds"] for entry in actor_logs)
    env_steps = sum(entry["env_steps"] for entry in actor_logs)
    # Evaluations count env steps as actor 0's own times K; actor 0 also spends time evaluating, so
    # the others play a little more. Their true total over actor 0's estimate, at the stop:
    undercount = env_steps / (actors * actor_logs[0]["env_steps"])
    reached = summary["stopped_at_return"]
    threshold_at = None
    if reached is not None:
        threshold_at = {"env_steps": round(reached["step"] * undercount), "env_steps_actor_0_times_k": int(reached["step"]),
                        "seconds": reached["acting_seconds"], "learner_step": int(reached["learner_step"]),
                        "return_mean": reached["return_mean"]}
    return {
        "actors": actors, "seed": seed,
        "threshold": threshold_at,
        "curve": [{"env_steps": round(row["step"] * undercount), "return_mean": round(row["return_mean"], 3),
                   "seconds": row.get("acting_seconds")} for row in rows if "acting_seconds" in row],
        "env_steps": env_steps,
        "env_steps_undercount": round(undercount, 3),
        "learner_steps": summary["learner_steps"],
        "acting_seconds": acting,
        "env_steps_per_s": round(env_steps / acting, 1),
        "learner_updates_per_s": round(summary["learner_steps"] / acting, 1),
        "wall_seconds": round(wall, 1),
        "final_return": summary["final_evaluation"]["return_mean"],
        "samples_per_insert": replay["samples_per_insert"],
        "configured_samples_per_insert": replay["configured_samples_per_insert"],
        "replay_inserts": replay["inserts"],
        "replay_samples": replay["samples"],
    }


def arm_summary(runs: list[dict]) -> dict:
    """Median seconds and env steps to the threshold over the seeds; a seed that never reached it
    counts as slower than every seed that did (its value is above any), so the median stays
    meaningful while most seeds reach it, and is None otherwise."""
    def median(key: str) -> float | None:
        values = [run["threshold"][key] if run["threshold"] else math.inf for run in runs]
        middle = statistics.median(values)
        return None if math.isinf(middle) else round(middle, 3)

    return {"seeds": [run["seed"] for run in runs], "reached": sum(run["threshold"] is not None for run in runs),
            "median_seconds_to_threshold": median("seconds"), "median_env_steps_to_threshold": median("env_steps"),
            "median_env_steps_per_s": round(statistics.median(run["env_steps_per_s"] for run in runs), 1),
            "samples_per_insert": [run["samples_per_insert"] for run in runs]}


def plot(runs: list[dict], env: str, threshold: float, out: Path) -> None:
    """Every run's learning curve against env steps (left) and against acting seconds (right)."""
    from rlstore.report_plot import plot_curves

    def series(x: str) -> dict:
        return {f"{r['actors']} actor{'s' if r['actors'] > 1 else ''}, seed {r['seed']}":
                [{"step": p[x], "return_mean": p["return_mean"]} for p in r["curve"]] for r in runs}

    references = {f"threshold {threshold}": threshold}
    plot_curves([{"title": f"DQfD online on {env}", "xlabel": "environment steps", "series": series("env_steps"),
                  "references": references},
                 {"title": "the same runs against wall-clock time", "xlabel": "seconds since acting started",
                  "series": series("seconds"), "references": references}], out)


def ratio(numerator, denominator) -> float | None:
    return round(numerator / denominator, 3) if numerator is not None and denominator else None


def main() -> None:
    parser = quick_parser(__doc__, f"smaller budget, one seed: {QUICK}")
    parser.add_argument("--plot", type=Path, default=Path("actors_learning_curve.png"),
                        help="where to draw the learning curves (PNG; default: %(default)s)")
    parser.add_argument("--step-ms", type=int, help=f"the env's step cost in ms (default: {FULL['step_ms']}; "
                                                    f"--quick {QUICK['step_ms']})")
    parser.add_argument("--seeds", type=int, nargs="+", help=f"run seeds per arm (default: {list(FULL['seeds'])}; "
                                                             f"--quick {list(QUICK['seeds'])})")
    parser.add_argument("--threshold", type=float, help=f"return to reach (default: {FULL['threshold']}; "
                                                         f"--quick {QUICK['threshold']})")
    parser.add_argument("--work", type=Path, help="keep the runs here instead of a temporary directory")
    args = parser.parse_args()
    budget = dict(QUICK if args.quick else FULL)
    budget.update({key: value for key, value in (("step_ms", args.step_ms), ("seeds", args.seeds),
                                                 ("threshold", args.threshold)) if value is not None})
    budget["seeds"] = tuple(budget["seeds"])
    env = f"{TASK}:step_ms={budget['step_ms']}"

    from rlstore.datasets.demonstrations import ingest_expert_demos
    from rlstore.store import Store

    root = args.work or Path(tempfile.mkdtemp(prefix="rlstore-actors-"))
    root.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    runs: list[dict] = []
    try:
        store = Store(root / "store")
        manifest = ingest_expert_demos(store, "catch_expert", TASK, DEMO_EPISODES, root / "logs", seed=0)
        demos = f"{manifest.name}@{manifest.version}"
        for seed in budget["seeds"]:  # the arms alternate, so a change in the machine's load hits both
            for actors in ARMS:
                log(f"seed {seed}: run dqfd --env {env} --actors {actors}, up to {budget['env_steps']} env steps "
                    f"or a return of {budget['threshold']} (load {os.getloadavg()[0]:.1f})")
                result = one_run(store, demos, root / f"actors-{actors}-seed-{seed}", env, actors, seed, budget)
                runs.append(result)
                log(f"  threshold: {result['threshold']}; {result['env_steps_per_s']} env steps/s, "
                    f"{result['learner_updates_per_s']} updates/s, samples per insert {result['samples_per_insert']}")
        plot(runs, env, budget["threshold"], args.plot)
    finally:
        if args.work is None:
            shutil.rmtree(root, ignore_errors=True)
    arms = {f"actors_{k}": arm_summary([run for run in runs if run["actors"] == k]) for k in ARMS}
    one, four = arms["actors_1"], arms["actors_4"]
    figures = {
        "wall_time_ratio_1_vs_4_actors": ratio(one["median_seconds_to_threshold"], four["median_seconds_to_threshold"]),
        "env_steps_ratio_4_vs_1": ratio(four["median_env_steps_to_threshold"], one["median_env_steps_to_threshold"]),
    }
    per_seed = {f"seed_{seed}": {
        "wall_time_ratio_1_vs_4_actors": ratio(*[(r["threshold"] or {}).get("seconds") for r in pair]),
        "env_steps_ratio_4_vs_1": ratio(*[(r["threshold"] or {}).get("env_steps") for r in reversed(pair)])}
        for seed in budget["seeds"] for pair in [[r for r in runs if r["seed"] == seed]]}
    print(json.dumps({
        "benchmark": "actors", "quick": args.quick, "env": env, "threshold": budget["threshold"], "budget": budget,
        "config": CONFIG, "demo_episodes": DEMO_EPISODES, "baseline": "actors_1", **arms, **figures,
        "per_seed_ratios": per_seed, "runs": runs, "targets": TARGETS,
        "meets_targets": all(figures[k] is not None and (figures[k] >= v if k.startswith("wall") else figures[k] <= v)
                             for k, v in TARGETS.items()),
        "plot": str(args.plot.resolve()), "cores": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()]}))


if __name__ == "__main__":
    main()
