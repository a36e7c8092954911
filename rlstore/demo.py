"""The main job on a built-in default: demonstrations → logs → Beam ingest → BC → evaluation → report.

This is what `make demo` (the README's first command) runs. Each stage is a public function
of its own module; this file only strings them together and tells the user what happened.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Sequence

from rlstore.store import Store

EVAL_SEED = 12_345  # evaluation episodes are not the recorded ones (those use the job's seed)


def dataset_name_for(env_spec: str, policy: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", f"{env_spec}_{policy}").strip("_")


def run_main_job(out: str | Path, env_spec: str = "catch", episodes: int = 100, seed: int = 0,
                 steps: int = 1000, eval_episodes: int = 100, beam_args: Sequence[str] = ()) -> dict:
    """Runs every stage under `out` and returns a summary (also written to out/summary.json)."""
    from datasets.demonstrations import record_npz_logs
    from pipelines.ingest import ingest
    from rlstore.info import describe

    out = Path(out)
    store = Store(out / "store")
    name = dataset_name_for(env_spec, "expert")
    started = time.time()

    _stage(1, f"recording {episodes} expert episodes of {env_spec} as npz logs")
    logs = out / "logs" / f"{name}-seed{seed}"
    record_npz_logs(env_spec, "expert", episodes, logs, seed=seed)
    print(f"    {len(list(logs.glob('*.npz')))} files in {logs}")

    _stage(2, f"ingesting them with the Beam pipeline into {store.root}")
    manifest = ingest(store, name, [str(logs)], format="npz", beam_args=beam_args, progress=True)
    dataset = f"{name}@{manifest.version}"
    info = describe(store, dataset)
    print(f"    published {dataset}: {info['num_episodes']} episodes, {info['num_steps']} steps")

    _stage(3, f"training BC on {dataset} for {steps} updates")
    run = _train_bc(store, dataset, out / "runs" / f"bc-{name}-v{manifest.version}", env_spec, steps, seed)

    _stage(4, f"evaluating BC, the expert and a random policy on {eval_episodes} episodes of {env_spec}")
    evaluations = _evaluate_all(run, env_spec, eval_episodes)
    for policy, result in evaluations.items():
        print(f"    {policy:>6}: return {result['return_mean']:.3f} ± {result['return_std']:.3f}")
    policy_dir = _export(run, out / "policy")

    _stage(5, "writing the report")
    report = _report(out, store, run, dataset, env_spec, evaluations, policy_dir, started)
    print(f"    {report} and {report.parent / 'learning_curve.png'}")

    summary = {"dataset": dataset, "store": str(store.root), "logs": str(logs), "run": str(run),
               "policy": str(policy_dir), "report": str(report), "episodes": manifest.num_episodes,
               "steps": manifest.num_steps, "updates": steps,
               "evaluation": {policy: {k: r[k] for k in ("env", "episodes", "return_mean", "return_std")}
                              for policy, r in evaluations.items()},
               "seconds": round(time.time() - started, 1)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"done in {summary['seconds']} s; summary in {out / 'summary.json'}")
    return summary


def _train_bc(store: Store, dataset: str, run_dir: Path, env_spec: str, steps: int, seed: int) -> Path:
    from agents.training import Schedule, train

    schedule = Schedule(steps=steps, log_every=50, eval_env=env_spec, eval_every=max(steps // 5, 1), eval_episodes=20)
    result = train("bc", store, dataset, run_dir, schedule, seed=seed)
    print(f"    {result['steps']} updates in {result['seconds']} s, final loss {result['metrics'].get('loss', float('nan')):.5f}; "
          f"run in {run_dir}")
    return run_dir


def _evaluate_all(run_dir: Path, env_spec: str, episodes: int) -> dict[str, dict]:
    from agents.evaluation import evaluate
    from agents.runs import load_trained
    from rlstore.envs import make_expert, make_policy

    agent = load_trained(run_dir)
    return {
        "bc": evaluate(agent.make_actor, env_spec, episodes, seed=EVAL_SEED, specs=agent.specs, progress=True),
        "expert": evaluate(lambda env: make_expert(env_spec, env), env_spec, episodes, seed=EVAL_SEED),
        "random": evaluate(lambda env: make_policy("random", env_spec, env, seed=EVAL_SEED), env_spec, episodes, seed=EVAL_SEED),
    }


def _export(run_dir: Path, out: Path) -> Path:
    from agents.export import export_saved_model
    from agents.runs import load_trained

    path = export_saved_model(load_trained(run_dir), out)
    print(f"    exported the policy as a SavedModel to {path}")
    return path


def _report(out: Path, store: Store, run_dir: Path, dataset: str, env_spec: str, evaluations: dict, policy_dir: Path,
            started: float) -> Path:
    from agents.report import write_report

    notes = [
        f"Behaviour cloning on `{dataset}`: expert demonstrations of `{env_spec}` recorded as npz logs, "
        f"ingested with the Beam pipeline, trained with `agents/bc`, evaluated on fresh episodes "
        f"(seed {EVAL_SEED}, not the recorded ones). Whole job: {time.time() - started:.0f} s.",
        "",
        f"Exported policy: `{policy_dir}` (`tf.saved_model.load(path)(observations)` → actions).",
        "",
        f"Reproduce: `rlstore --store {store.root} train bc --dataset "
        f"{dataset} --steps N --out DIR --eval-env {env_spec}`, then "
        f"`rlstore eval --checkpoint DIR --env {env_spec} --episodes N --json`.",
    ]
    return write_report(run_dir, out, evaluations, title=f"rlstore main job: BC on {env_spec}", notes=notes)


def _stage(number: int, text: str) -> None:
    print(f"[{number}] {text}", flush=True)
