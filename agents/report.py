"""A short report of a training run: markdown plus a PNG learning curve, for people, not scripts.

Everything comes from the run directory (run.json, logs/train.csv, logs/eval.csv) and the
evaluations passed in, so the report can be rebuilt from a finished run at any time.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from rlstore.agents import run_manifest
from rlstore.agents.logging import read_csv
from rlstore.agents.runs import RunDirectory


def plot_learning_curve(run_dir: str | Path, out: str | Path, references: Mapping[str, float] | None = None) -> Path:
    """Training loss and evaluation return against updates, as a PNG (matplotlib's Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = RunDirectory.at(run_dir)
    agent = run_manifest.read(run.manifest_path)["agent"]
    train_rows, eval_rows = read_csv(run.logs / "train.csv"), read_csv(run.logs / "eval.csv")
    figure, (loss_axis, return_axis) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    loss_axis.plot([r["step"] for r in train_rows], [r["loss"] for r in train_rows], color="tab:blue")
    loss_axis.set_yscale("log")
    loss_axis.set_ylabel("training loss")
    loss_axis.grid(True, alpha=0.3)
    if eval_rows:
        steps = [r["step"] for r in eval_rows]
        means = [r["return_mean"] for r in eval_rows]
        stds = [r["return_std"] for r in eval_rows]
        return_axis.plot(steps, means, marker="o", color="tab:green", label=agent)
        return_axis.fill_between(steps, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)],
                                 color="tab:green", alpha=0.2)
    for (label, value), style in zip((references or {}).items(), ("--", ":", "-.")):
        return_axis.axhline(value, linestyle=style, color="gray", label=label)
    return_axis.set_ylabel("evaluation return")
    return_axis.set_xlabel("updates")
    return_axis.grid(True, alpha=0.3)
    if eval_rows or references:
        return_axis.legend(loc="best")
    figure.suptitle(f"{agent} learning curve")
    figure.tight_layout()
    out = Path(out)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out


def write_report(run_dir: str | Path, out_dir: str | Path, evaluations: Mapping[str, Mapping[str, Any]],
                 title: str, notes: list[str] | None = None) -> Path:
    """Writes `report.md` and `learning_curve.png` into `out_dir`; returns the markdown path.

    `evaluations` maps a policy's name (e.g. "bc", "expert", "random") to an
    `rlstore.agents.evaluation.evaluate` result; the first entry is the trained agent.
    """
    out_dir = Path(out_dir)
    run = RunDirectory.at(run_dir)
    manifest = run_manifest.read(run.manifest_path)
    references = {f"{name} ({result['return_mean']:.2f})": result["return_mean"]
                  for name, result in list(evaluations.items())[1:]}
    curve = plot_learning_curve(run.path, out_dir / "learning_curve.png", references)
    train_rows = read_csv(run.logs / "train.csv")
    session = manifest["sessions"][-1]
    dataset = manifest["dataset"]
    lines = [f"# {title}", ""]
    lines += notes or []
    lines += ["", "## Evaluation", "", "| policy | env | episodes | return mean | return std | min | max |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in evaluations.items():
        lines.append(f"| {name} | `{r['env']}` | {r['episodes']} | {r['return_mean']:.3f} | {r['return_std']:.3f} "
                     f"| {r['return_min']:.3f} | {r['return_max']:.3f} |")
    lines += ["", f"![learning curve]({curve.name})", "", "## Training", "",
              f"- agent: `{manifest['agent']}`, seed {manifest['seed']}, {session['end_step']} updates",
              f"- config: `{manifest['config']}`",
              f"- final training loss: {train_rows[-1]['loss']:.5f}" if train_rows else "- no training rows logged",
              f"- updates/s (last logged chunk): {train_rows[-1]['updates_per_s']:,.0f}" if train_rows else "",
              "", "## Lineage", "",
              f"- dataset: `{dataset['ref']}` ({dataset['num_episodes']} episodes, {dataset['num_steps']} steps), "
              f"manifest sha256 `{dataset['manifest_sha256'][:16]}…`, store `{dataset['store']}`",
              f"- run directory: `{run.path}` (run manifest `run.json`, checkpoints, TensorBoard and CSV logs)",
              f"- code: rlstore {session['code']['rlstore']}, git commit `{session['code']['git_commit'] or 'unknown'}`",
              ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(line for line in lines if line is not None))
    return path
