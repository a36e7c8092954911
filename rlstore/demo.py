"""The main job on a built-in default: demonstrations → logs → Beam ingest → BC → evaluation →
DQfD online with the demonstrations mixed in and its episodes written back → report.

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
# DQfD online in the main job: small and quick, yet the same code path as `rlstore run dqfd`.
ONLINE_CONFIG = {"batch_size": 64, "hidden_sizes": (64, 64), "pretrain_steps": 500, "target_update_period": 250,
                 "min_replay_size": 200}


def dataset_name_for(env_spec: str, policy: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", f"{env_spec}_{policy}").strip("_")


def run_main_job(out: str | Path, env_spec: str = "catch", episodes: int = 100, seed: int = 0,
                 steps: int = 1000, eval_episodes: int = 100, beam_args: Sequence[str] = (),
                 online_steps: int = 3000) -> dict:
    """Runs every stage under `out` and returns a summary (also written to out/summary.json).

    `online_steps` is the DQfD online run's env-step budget (0 leaves the online stage out)."""
    from rlstore.datasets.demonstrations import record_npz_logs
    from rlstore.pipelines.ingest import ingest
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

    online = None
    if online_steps:
        _stage(5, f"running DQfD online on {env_spec} for {online_steps} env steps, {dataset} mixed into every "
                  f"batch, new episodes written back to {name}_dqfd")
        online = _run_dqfd_online(store, dataset, out / "runs" / f"dqfd-online-{name}-v{manifest.version}", env_spec,
                                  online_steps, seed, f"{name}_dqfd")
        evaluations["dqfd"] = _evaluate_run(Path(online["run_dir"]), env_spec, eval_episodes)
        print(f"      dqfd: return {evaluations['dqfd']['return_mean']:.3f} ± {evaluations['dqfd']['return_std']:.3f}")

    _stage(6 if online else 5, "writing the report")
    report = _report(out, store, run, dataset, env_spec, evaluations, policy_dir, started, online)
    print(f"    {report} and {report.parent / 'learning_curve.png'}")

    summary = {"dataset": dataset, "store": str(store.root), "logs": str(logs), "run": str(run),
               "policy": str(policy_dir), "report": str(report), "episodes": manifest.num_episodes,
               "steps": manifest.num_steps, "updates": steps,
               "evaluation": {policy: {k: r[k] for k in ("env", "episodes", "return_mean", "return_std")}
                              for policy, r in evaluations.items()},
               "online": online and {key: online[key] for key in ("run_dir", "env_steps", "learner_steps", "demo_ratio",
                                                                  "write_back")},
               "seconds": round(time.time() - started, 1)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"done in {summary['seconds']} s; summary in {out / 'summary.json'}")
    return summary


def _train_bc(store: Store, dataset: str, run_dir: Path, env_spec: str, steps: int, seed: int) -> Path:
    from rlstore.agents.training import Schedule, train

    schedule = Schedule(steps=steps, log_every=50, eval_env=env_spec, eval_every=max(steps // 5, 1), eval_episodes=20)
    result = train("bc", store, dataset, run_dir, schedule, seed=seed)
    print(f"    {result['steps']} updates in {result['seconds']} s, final loss {result['metrics'].get('loss', float('nan')):.5f}; "
          f"run in {run_dir}")
    return run_dir


def _run_dqfd_online(store: Store, dataset: str, run_dir: Path, env_spec: str, env_steps: int, seed: int,
                     write_back: str) -> dict:
    from rlstore.agents.online.run import OnlineOptions, run

    options = OnlineOptions(env=env_spec, env_steps=env_steps, out=run_dir, demos=dataset, write_back=write_back,
                            commit_every=100, seed=seed, env_seed=seed, eval_every_env_steps=max(env_steps // 6, 1),
                            final_eval_episodes=20)
    summary = run("dqfd", store, options, ONLINE_CONFIG)
    versions = summary["write_back"]["versions"]
    print(f"    {summary['env_steps']} env steps, {summary['learner_steps']} updates in {summary['seconds']} s; "
          f"wrote versions {versions} of {write_back}; run in {run_dir}")
    return summary


def _evaluate_run(run_dir: Path, env_spec: str, episodes: int) -> dict:
    from rlstore.agents.evaluation import evaluate
    from rlstore.agents.runs import load_trained

    agent = load_trained(run_dir)
    return evaluate(agent.make_actor, env_spec, episodes, seed=EVAL_SEED, specs=agent.specs)


def _evaluate_all(run_dir: Path, env_spec: str, episodes: int) -> dict[str, dict]:
    from rlstore.agents.evaluation import evaluate
    from rlstore.agents.runs import load_trained
    from rlstore.envs import make_expert, make_policy

    agent = load_trained(run_dir)
    return {
        "bc": evaluate(agent.make_actor, env_spec, episodes, seed=EVAL_SEED, specs=agent.specs, progress=True),
        "expert": evaluate(lambda env: make_expert(env_spec, env), env_spec, episodes, seed=EVAL_SEED),
        "random": evaluate(lambda env: make_policy("random", env_spec, env, seed=EVAL_SEED), env_spec, episodes, seed=EVAL_SEED),
    }


def _export(run_dir: Path, out: Path) -> Path:
    from rlstore.agents.export import export_saved_model
    from rlstore.agents.runs import load_trained

    path = export_saved_model(load_trained(run_dir), out)
    print(f"    exported the policy as a SavedModel to {path}")
    return path


def _report(out: Path, store: Store, run_dir: Path, dataset: str, env_spec: str, evaluations: dict, policy_dir: Path,
            started: float, online: dict | None) -> Path:
    from rlstore.agents.report import write_report

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
    if online is None:
        return write_report(run_dir, out, evaluations, title=f"rlstore main job: BC on {env_spec}", notes=notes)
    notes += ["", *_online_notes(store, dataset, env_spec, online)]
    report = write_report(run_dir, out, evaluations, title=f"rlstore main job: BC and DQfD online on {env_spec}",
                          notes=notes)
    _plot_both_curves(run_dir, Path(online["run_dir"]), evaluations, out / "learning_curve.png")
    return report


def _online_notes(store: Store, dataset: str, env_spec: str, online: dict) -> list[str]:
    """The online stage in the report: what ran, and the store versions it created."""
    write_back = online["write_back"]
    lines = [f"DQfD online (`rlstore run dqfd`): pre-trained on `{dataset}`, then acted on `{env_spec}` for "
             f"{online['env_steps']} env steps ({online['learner_steps']} updates) with demonstrations making "
             f"{online['demo_ratio']:.0%} of every batch; run directory `{online['run_dir']}`.", "",
             "Store versions this job created:", "", "| dataset version | written by | episodes | steps |",
             "| --- | --- | --- | --- |", f"| `{dataset}` | Beam ingest of the expert logs | "
             f"{store.manifest(dataset).num_episodes} | {store.manifest(dataset).num_steps} |"]
    previous = 0
    for version in write_back["versions"]:
        manifest = store.manifest(f"{write_back['dataset']}@{version}")
        lines.append(f"| `{write_back['dataset']}@{version}` | DQfD actors (write-back, run "
                     f"`{manifest.lineage.get('run_id')}`) | +{manifest.num_episodes - previous} | {manifest.num_steps} |")
        previous = manifest.num_episodes
    return lines


def _plot_both_curves(bc_run: Path, online_run: Path, evaluations: dict, out: Path) -> None:
    """Replaces the BC-only curve with BC's (return vs updates) and DQfD's (return vs env steps) side by side."""
    from rlstore.agents.logging import read_csv
    from rlstore.report_plot import plot_curves

    references = {f"{name} ({evaluations[name]['return_mean']:.2f})": evaluations[name]["return_mean"]
                  for name in ("expert", "random")}
    plot_curves([
        {"title": "BC, offline", "xlabel": "updates", "series": {"bc": read_csv(bc_run / "logs" / "eval.csv")},
         "references": references},
        {"title": f"DQfD online (after {ONLINE_CONFIG['pretrain_steps']} pre-training updates), demonstrations "
                  "mixed in", "xlabel": "environment steps",
         "series": {"dqfd": read_csv(online_run / "logs" / "eval.csv")}, "references": references},
    ], out)


def _stage(number: int, text: str) -> None:
    print(f"[{number}] {text}", flush=True)
