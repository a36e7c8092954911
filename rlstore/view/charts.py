"""Inline SVG drawn on the server: line charts of per-step values and the lineage graph.

Plain SVG strings keep the viewer free of JavaScript libraries and of matplotlib on the hot
path: an episode page is a few kilobytes however long the episode.
"""
from __future__ import annotations

from html import escape
from typing import Sequence

import numpy as np

_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")
MAX_POINTS = 1000
MAX_TRACES = 8


def line_chart(title: str, values: np.ndarray, width: int = 640, height: int = 150) -> str:
    """Values over time ([T] or [T, ...]: up to MAX_TRACES columns, one trace each)."""
    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    shown = values[:, :MAX_TRACES]
    if len(shown) > MAX_POINTS:  # long episodes: every k-th step, enough for a screen
        shown = shown[:: int(np.ceil(len(shown) / MAX_POINTS))]
    finite = shown[np.isfinite(shown)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if high == low:
        low, high = low - 1.0, high + 1.0
    left, right, top, bottom = 48, 8, 20, 18
    plot_w, plot_h = width - left - right, height - top - bottom
    steps = max(len(shown) - 1, 1)
    lines = []
    for column in range(shown.shape[1]):
        points = " ".join(f"{left + plot_w * t / steps:.1f},{top + plot_h * (high - v) / (high - low):.1f}"
                          for t, v in enumerate(shown[:, column]) if np.isfinite(v))
        lines.append(f'<polyline fill="none" stroke="{_COLOURS[column % len(_COLOURS)]}" stroke-width="1.5" '
                     f'points="{points}"/>')
    more = f" (first {MAX_TRACES} of {values.shape[1]})" if values.shape[1] > MAX_TRACES else ""
    return (f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}">'
            f'<text x="{left}" y="13" font-size="12">{escape(title)}{more}</text>'
            f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#ccc"/>'
            f'<text x="{left - 4}" y="{top + 9}" font-size="10" text-anchor="end">{high:.3g}</text>'
            f'<text x="{left - 4}" y="{top + plot_h}" font-size="10" text-anchor="end">{low:.3g}</text>'
            f'<text x="{left}" y="{height - 4}" font-size="10">0</text>'
            f'<text x="{left + plot_w}" y="{height - 4}" font-size="10" text-anchor="end">{len(values) - 1}</text>'
            + "".join(lines) + "</svg>")


def graph(columns: Sequence[tuple[str, Sequence[tuple[str, str, str | None]]]],
          edges: Sequence[tuple[str, str]], width: int = 900) -> str:
    """A left-to-right graph: `columns` of (heading, [(node id, label, link or None)]), `edges`
    (from id, to id). Nodes are boxes stacked in their column; edges are arrows."""
    column_w = width / max(len(columns), 1)
    box_w, box_h, gap = min(column_w - 30, 200), 26, 12
    rows = max((len(nodes) for _, nodes in columns), default=0)
    height = 40 + rows * (box_h + gap)
    where: dict[str, tuple[float, float]] = {}
    parts = []
    for index, (heading, nodes) in enumerate(columns):
        x = index * column_w + 10
        parts.append(f'<text x="{x}" y="16" font-size="12" font-weight="bold">{escape(heading)}</text>')
        for row, (node, label, link) in enumerate(nodes):
            y = 30 + row * (box_h + gap)
            where[node] = (x, y)
            box = (f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="4" fill="#eef2f8" stroke="#4c72b0"/>'
                   f'<text x="{x + 6}" y="{y + 17}" font-size="11">{escape(_short(label, box_w))}</text>'
                   f'<title>{escape(label)}</title>')
            parts.append(f'<a href="{escape(link)}">{box}</a>' if link else box)
    for source, target in edges:
        if source in where and target in where:
            (x1, y1), (x2, y2) = where[source], where[target]
            same_column = x1 == x2
            start = (x1 + box_w / 2, y1 + box_h) if same_column else (x1 + box_w, y1 + box_h / 2)
            end = (x2 + box_w / 2, y2) if same_column else (x2, y2 + box_h / 2)
            parts.append(f'<line x1="{start[0]:.0f}" y1="{start[1]:.0f}" x2="{end[0]:.0f}" y2="{end[1]:.0f}" '
                         'stroke="#888" marker-end="url(#arrow)"/>')
    return (f'<svg class="graph" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" '
            'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#888"/></marker></defs>' + "".join(parts) + "</svg>")


def _short(label: str, box_w: float) -> str:
    room = int(box_w / 6.5)
    return label if len(label) <= room else "…" + label[-(room - 1):]
