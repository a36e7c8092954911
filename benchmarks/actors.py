"""Actors that cut wall-clock time: DQfD online to a return threshold with 1 and with 4 actor processes.

Workload: `rlstore run dqfd` on Catch with a simulator's step cost (`catch:step_ms=10`: every
env step takes 10 ms, as a physics simulator or an emulator at its real frame rate would;
rlstore.envs.step_cost), 2 expert demonstration episodes (demo ratio 0.25, no pre-training, so
the agent must learn online), the same config and the same samples-per-insert ratio for both
runs. Acme's claim (Hoffman et al. 2020): with 4 actors an agent takes under half the
wall-clock time to learn, with about as many env steps.

Measured per run, from logs/eval.csv (actor 0 evaluates the greedy policy every `eval_every`
env steps on 10 episodes of Catch without the step cost, and stamps each row with the seconds
since acting started) and logs/replay.json (the replay server's own rate-limiter counts):
  * env steps and wall-clock seconds (since acting started, i.e. after start-up) at the first
    evaluation whose mean return reaches the threshold;
  * the learning curve (return against env steps) of both runs, drawn into one PNG;
  * the achieved samples per insert of the agent's replay table (samples / inserts it completed)
    against the configured ratio.
Figures: `wall_time_ratio_1_vs_4_actors` (1 actor's seconds / 4 actors'; target >= 2) and
`env_steps_ratio_4_vs_1` (4 actors' env steps / 1 actor's; target <= 1.3).

A sleeping step leaves the CPU free, so 4 actors overlap even on 2 cores; the learner must still
keep up with 4x the inserts (a small network and batch keep its updates cheap), or the rate
limiter would hold the actors back. Prints one JSON line on stdout; progress goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import log, quick_parser  # noqa: E402

from rlstore.quiet import silence  # noqa: E402

silence()  # before TensorFlow

TASK = "catch"
STEP_MS = 10
DEMO_EPISODES = 2
THRESHOLD = 0.8  # mean return over the evaluation episodes (Catch: +1 caught, -1 missed)
CONFIG = {"demo_ratio": 0.25, "pretrain_steps": 0, "batch_size": 64, "hidden_sizes": (64, 64),
          "learning_rate": 1e-3, "samples_per_insert": 16.0, "min_replay_size": 200, "target_update_period": 100,
          "n_step": 3, "epsilon": 0.1, "variable_update_period": 20}
FULL = {"env_steps": 3000, "eval_every": 300, "eval_episodes": 10}
QUICK = {"env_steps": 1500, "eval_every": 300, "eval_episodes": 10}
TARGETS = {"wall_time_ratio_1_vs_4_actors": 2.0, "env_steps_ratio_4_vs_1": 1.3}


def to_threshold(rows: list[dict], threshold: float) -> dict | None:
    """The first evaluation (actor 0's periodic ones carry `acting_seconds`) reaching `threshold`."""
    for row in rows:
        if "acting_seconds" in row and row["return_mean"] >= threshold:
            return {"env_steps": int(row["step"]), "seconds": row["acting_seconds"],
                    "learner_step": int(row["learner_step"]), "return_mean": row["return_mean"]}
    return None


def one_run(store, demos: str, root: Path, env: str, actors: int, budget: dict, threshold: float) -> dict:
    from rlstore.agents.errors import AgentError
    from rlstore.agents.logging import read_csv
    from rlstore.agents.online.run import OnlineOptions, run

    out = root / f"actors-{actors}"
    options = OnlineOptions(env=env, env_steps=budget["env_steps"], out=out, demos=demos, actors=actors,
                            eval_every_env_steps=budget["eval_every"], eval_episodes=budget["eval_episodes"],
                            final_eval_episodes=budget["eval_episodes"])
    started = time.perf_counter()
    try:
        summary = run("dqfd", store, options, CONFIG)
    except AgentError as error:
        # On a loaded machine the learner's final checkpoint can outlast the supervisor's stop
        # timeout; every actor has finished by then, and what is measured is in the logs.
        if "did not stop cleanly" not in str(error):
            raise
        log(f"  {error}: figures from the run's logs, no final evaluation")
        summary = None
    wall = time.perf_counter() - started
    rows = read_csv(out / "logs" / "eval.csv")
    replay = json.loads((out / "logs" / "replay.json").read_text())["transitions"]  # at most a few seconds old
    actor_logs = [json.loads(path.read_text()) for path in sorted((out / "logs").glob("actor-*.json"))]
    acting = max(entry["acting_seconds"] for entry in actor_logs)
    env_steps = sum(entry["env_steps"] for entry in actor_logs)
    return {
        "actors": actors,
        "threshold": to_threshold(rows, threshold),
        "curve": [{"env_steps": int(row["step"]), "return_mean": round(row["return_mean"], 3),
                   "seconds": row.get("acting_seconds")} for row in rows],
        "env_steps": env_steps,
        "learner_steps": summary["learner_steps"] if summary else None,
        "acting_seconds": acting,
        "env_steps_per_s": round(env_steps / acting, 1),
        "wall_seconds": round(wall, 1),
        "final_return": summary["final_evaluation"]["return_mean"] if summary else None,
        "stopped_cleanly": summary is not None,
        "samples_per_insert": replay["samples_per_insert"],
        "configured_samples_per_insert": replay["configured_samples_per_insert"],
        "replay_inserts": replay["inserts"],
        "replay_samples": replay["samples"],
    }


def plot(results: dict, threshold: float, out: Path) -> None:
    from rlstore.report_plot import plot_curves

    series = {f"{r['actors']} actor{'s' if r['actors'] > 1 else ''}":
              [{"step": p["env_steps"], "return_mean": p["return_mean"]} for p in r["curve"]] for r in results.values()}
    plot_curves([{"title": f"DQfD online on {TASK}:step_ms={STEP_MS}", "xlabel": "environment steps",
                  "series": series, "references": {f"threshold {threshold}": threshold}}], out)


def ratio(numerator, denominator) -> float | None:
    return round(numerator / denominator, 3) if numerator is not None and denominator else None


def main() -> None:
    parser = quick_parser(__doc__, f"smaller budget: {QUICK}")
    parser.add_argument("--plot", type=Path, default=Path("actors_learning_curve.png"),
                        help="where to draw both learning curves (PNG; default: %(default)s)")
    parser.add_argument("--step-ms", type=int, default=STEP_MS, help="the env's step cost in ms (default: %(default)s)")
    parser.add_argument("--threshold", type=float, default=THRESHOLD, help="return to reach (default: %(default)s)")
    parser.add_argument("--work", type=Path, help="keep the runs here instead of a temporary directory")
    args = parser.parse_args()
    budget = QUICK if args.quick else FULL
    env = f"{TASK}:step_ms={args.step_ms}"

    from rlstore.datasets.demonstrations import ingest_expert_demos
    from rlstore.store import Store

    root = args.work or Path(tempfile.mkdtemp(prefix="rlstore-actors-"))
    root.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    try:
        store = Store(root / "store")
        manifest = ingest_expert_demos(store, "catch_expert", TASK, DEMO_EPISODES, root / "logs", seed=0)
        demos = f"{manifest.name}@{manifest.version}"
        results = {}
        for actors in (1, 4):
            log(f"run dqfd --env {env} --actors {actors}, {budget['env_steps']} env steps")
            results[f"actors_{actors}"] = result = one_run(store, demos, root, env, actors, budget, args.threshold)
            log(f"  threshold: {result['threshold']}; {result['env_steps_per_s']} env steps/s, "
                f"samples per insert {result['samples_per_insert']}")
        plot(results, args.threshold, args.plot)
    finally:
        if args.work is None:
            shutil.rmtree(root, ignore_errors=True)
    one, four = results["actors_1"]["threshold"], results["actors_4"]["threshold"]
    figures = {
        "wall_time_ratio_1_vs_4_actors": ratio(one and one["seconds"], four and four["seconds"]),
        "env_steps_ratio_4_vs_1": ratio(four and four["env_steps"], one and one["env_steps"]),
    }
    print(json.dumps({
        "benchmark": "actors", "quick": args.quick, "env": env, "threshold": args.threshold, "budget": budget,
        "config": CONFIG, "demo_episodes": DEMO_EPISODES, "baseline": "actors_1", **results, **figures,
        "targets": TARGETS,
        "meets_targets": all(figures[k] is not None and (figures[k] >= v if k.startswith("wall") else figures[k] <= v)
                             for k, v in TARGETS.items()),
        "plot": str(args.plot.resolve()), "cores": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()]}))


if __name__ == "__main__":
    main()
