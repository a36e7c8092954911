"""What the online quality benchmarks (dqfd_quality.py, r2d3_quality.py) share for their rows on
third-party tasks: choosing rows, variants and seeds on the command line, recording the
demonstrations, one `rlstore run` per variant and seed, and a learning-curve PNG per task.

Seeds, kept apart by use (rlstore.seeds): demonstrations are recorded with env seeds 0..N-1 (one
per episode, from `record`'s seed 0); a run with seed S uses `--seed S --env-seed S`, so its
actor plays env seed 1,000 + 100·S, its periodic evaluations 5,000 + S and its final
evaluation, the row's figure, 10,000 + S. No figure comes from a demonstration's episodes.
Every run uses the CLI's defaults plus the per-suite preset the env spec selects
(rlstore.agents.presets); a variant only sets what defines it (no demonstrations, a demo ratio).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Mapping

from benchmarks.common import log

PNG_DIR = Path("benchmark_curves")


def parse_rows(doc: str, tasks: Mapping[str, Any], variants: Mapping[str, Any], quick_task: str,
               quick_variants: tuple[str, ...]) -> argparse.Namespace:
    """--quick, or --tasks/--variants/--seeds/--env-steps to run a subset (one row at a time on a busy machine)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"a smoke run under a minute: {quick_task}, {', '.join(quick_variants)}, seed 0, "
                             "a few thousand env steps (the figures are not the targets)")
    parser.add_argument("--tasks", default=",".join(tasks), help=f"comma-separated, of {', '.join(tasks)}")
    parser.add_argument("--variants", default=",".join(variants), help=f"comma-separated, of {', '.join(variants)}")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated run seeds (default: 0,1,2)")
    parser.add_argument("--env-steps", type=int, help="override every task's env-step budget")
    parser.add_argument("--png-dir", type=Path, default=PNG_DIR, help=f"where the curves go (default: {PNG_DIR})")
    args = parser.parse_args()
    if args.quick:
        args.tasks, args.variants, args.seeds = quick_task, ",".join(quick_variants), "0"
    args.tasks = [name for name in args.tasks.split(",") if name]
    args.variants = [name for name in args.variants.split(",") if name]
    args.seeds = [int(seed) for seed in args.seeds.split(",") if seed]
    unknown = sorted(set(args.tasks) - set(tasks)) + sorted(set(args.variants) - set(variants))
    if unknown:
        parser.error(f"unknown task or variant: {', '.join(unknown)}")
    return args


def record_demos(store, root: Path, env: str, episodes: int) -> tuple[str, float]:
    """Expert episodes of `env` (env seeds from 0) through npz logs and the Beam ingest; (ref, mean return)."""
    from rlstore.datasets.demonstrations import ingest_expert_demos

    name = "demos_" + "".join(c if c.isalnum() else "_" for c in env)
    log(f"recording {episodes} expert episodes of {env} (env seeds from 0) and ingesting them")
    manifest = ingest_expert_demos(store, name, env, episodes, root / f"{name}_logs", seed=0)
    return f"{manifest.name}@{manifest.version}", float(manifest.stats.returns.mean)


def online_run(agent: str, store, env: str, demos: str | None, out: Path, env_steps: int, seed: int,
               config: Mapping[str, Any], eval_points: int, eval_episodes: int, final_episodes: int) -> dict:
    """One `rlstore run AGENT` (defaults + preset + `config`); its final evaluation, curve and cost."""
    from rlstore.agents.logging import read_csv
    from rlstore.agents.online.run import OnlineOptions, run

    started = time.perf_counter()
    options = OnlineOptions(env=env, env_steps=env_steps, out=out, demos=demos, seed=seed, env_seed=seed,
                            eval_every_env_steps=max(env_steps // eval_points, 1), eval_episodes=eval_episodes,
                            final_eval_episodes=final_episodes)
    summary = run(agent, store, options, dict(config))
    final = summary["final_evaluation"]
    rows = read_csv(out / "logs" / "eval.csv")
    curve = [(int(row["step"]), round(float(row["return_mean"]), 3)) for row in rows]
    return {"seed": seed, "final_return": final["return_mean"], "final_success_rate": final.get("success_rate"),
            "final_eval_seed": final["seed"], "final_eval_episodes": final["episodes"],
            "curve_mean_return": round(sum(r for _, r in curve) / len(curve), 4) if curve else None,
            "curve": curve, "curve_rows": rows, "preset": summary["preset"], "env_steps": summary["env_steps"],
            "learner_steps": summary["learner_steps"], "seconds": round(time.perf_counter() - started, 1)}


def plot_task(task: str, env: str, runs: Mapping[str, list[dict]], png_dir: Path,
              references: Mapping[str, float] | None = None) -> str:
    """One PNG per task: every variant's and seed's evaluation return against env steps."""
    from rlstore.report_plot import plot_curves

    png_dir.mkdir(parents=True, exist_ok=True)
    out = png_dir / f"{task}.png"
    series = {f"{variant} seed {run['seed']}": run["curve_rows"]
              for variant, variant_runs in runs.items() for run in variant_runs if run["curve_rows"]}
    plot_curves([{"title": f"{task}: {env}", "xlabel": "environment steps", "series": series,
                  "references": dict(references or {})}], out)
    return str(out)


def without_rows(runs: Mapping[str, list[dict]]) -> dict[str, list[dict]]:
    """The runs as JSON figures (the raw eval.csv rows stay out of the printed line)."""
    return {variant: [{key: value for key, value in run.items() if key != "curve_rows"} for run in variant_runs]
            for variant, variant_runs in runs.items()}
