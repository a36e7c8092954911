"""Drawing a version's quality report (return and length histograms, actions, observation
ranges) and learning curves (evaluation return against updates or environment steps).

The quality report comes from the report in the manifest (histograms with their bin edges,
per-element statistics), so drawing reads no episode data; curves come from a run's CSV rows. Uses matplotlib's object API with the Agg
canvas and no pyplot, so it needs no display and leaves no global figure state behind.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

MAX_ACTION_ELEMENTS = 8


def plot_report(report: Mapping[str, Any], title: str, out: str | os.PathLike) -> None:
    """Writes a 2x2 figure (PNG, or any format matplotlib infers from `out`'s suffix)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(13, 8.5), layout="constrained")
    (returns, lengths), (actions, observations) = figure.subplots(2, 2)
    _histogram(returns, report["episode_return"]["histogram"], "episode return", "#4c72b0")
    _histogram(lengths, report["episode_length"]["histogram"], "episode length (steps)", "#55a868")
    _actions(actions, report.get("actions", {}))
    _ranges(observations, {k: v for k, v in report.get("features", {}).items() if k.startswith("steps/observation")})
    counts = report["counts"]
    warnings = len(report.get("warnings", []))
    figure.suptitle(f"{title}: {counts['episodes']} episodes, {counts['steps']} steps, "
                    f"{counts.get('rejected_episodes', 0)} rejected, {warnings} warning(s)")
    figure.savefig(out, dpi=100)


def plot_curves(panels: Sequence[Mapping[str, Any]], out: str | os.PathLike) -> None:
    """Learning curves side by side, one panel each: evaluation return (mean ± std) against the
    panel's x axis (updates for a batch run, environment steps for an online one).

    A panel is `{"title", "xlabel", "series": {label: rows}, "references": {label: value}}`,
    rows as in a run's logs/eval.csv (`step`, `return_mean`, `return_std`); references are
    drawn as horizontal lines (e.g. the expert's and a random policy's returns).
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.5 * len(panels), 4.5), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for axis, panel in zip(axes, panels):
        for label, rows in panel["series"].items():
            steps = np.array([row["step"] for row in rows], float)
            mean = np.array([row["return_mean"] for row in rows], float)
            std = np.array([row.get("return_std", 0.0) for row in rows], float)
            axis.plot(steps, mean, marker="o", markersize=3, label=label)
            axis.fill_between(steps, mean - std, mean + std, alpha=0.2)
        for (label, value), style in zip(panel.get("references", {}).items(), ("--", ":", "-.")):
            axis.axhline(value, linestyle=style, color="gray", label=label)
        axis.set_title(panel["title"])
        axis.set_xlabel(panel["xlabel"])
        axis.set_ylabel("evaluation return")
        axis.grid(True, alpha=0.3)
        axis.legend(loc="best", fontsize="small")
    figure.savefig(out, dpi=100)


def _edges(histogram: Mapping[str, Any]) -> np.ndarray:
    return histogram["start"] + histogram["bin_width"] * np.arange(len(histogram["counts"]) + 1)


def _histogram(axis, histogram: Mapping[str, Any], label: str, color: str) -> None:
    counts = np.asarray(histogram["counts"])
    if counts.size:
        axis.stairs(counts, _edges(histogram), fill=True, color=color, alpha=0.8)
    axis.set_xlabel(label)
    axis.set_ylabel("episodes")
    axis.set_title(f"{label} distribution")


def _actions(axis, actions: Mapping[str, Any]) -> None:
    """Discrete actions as bars per value, continuous ones as one outline per element."""
    axis.set_title("action distribution")
    axis.set_ylabel("transitions")
    drawn = 0
    for field, entry in actions.items():
        histograms = entry["histograms"][:MAX_ACTION_ELEMENTS]
        width = 0.8 / max(len(histograms), 1)
        for index, histogram in enumerate(histograms):
            counts, edges = np.asarray(histogram["counts"]), _edges(histogram)
            if not counts.size:
                continue
            label = field if len(entry["histograms"]) == 1 else f"{field}[{index}]"
            if entry["discrete"] and histogram["bin_width"] == 1:  # one bar per action value
                axis.bar(edges[:-1] - 0.4 + index * width, counts, width=width, align="edge", label=label)
            else:
                axis.stairs(counts, edges, label=label)
            drawn += 1
    axis.set_xlabel("action value")
    if drawn:
        axis.legend(fontsize="small")
    else:
        axis.text(0.5, 0.5, "no transitions", ha="center", va="center", transform=axis.transAxes)


def _ranges(axis, features: Mapping[str, Any]) -> None:
    """Per observation element: min..max as a thin line, mean ± std as a thick one, the mean as a dot."""
    axis.set_title("observation ranges (min..max, mean ± std)")
    labels, position = [], 0
    for field, entry in features.items():
        low, high = np.asarray(entry["min"], float), np.asarray(entry["max"], float)
        mean, std = np.asarray(entry["mean"], float), np.asarray(entry["std"], float)
        x = position + np.arange(len(low))
        axis.vlines(x, low, high, color="0.5", linewidth=1)
        axis.vlines(x, mean - std, mean + std, color="#c44e52", linewidth=4)
        axis.plot(x, mean, "k.", markersize=4)
        name = field.removeprefix("steps/")
        labels.extend([name] if len(low) == 1 else [f"{name}[{i}]" for i in range(len(low))])
        position += len(low)
    if position <= 24:
        axis.set_xticks(range(position), labels, rotation=60, ha="right", fontsize="small")
    else:
        axis.set_xlabel("observation element (" + ", ".join(f.removeprefix("steps/") for f in features) + ")")
    if not position:
        axis.text(0.5, 0.5, "no numeric observations", ha="center", va="center", transform=axis.transAxes)
