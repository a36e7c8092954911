"""`rlstore report NAME[@V] --out FILE.png`, and the quality lines `rlstore info` prints.

The report is the one the ingest pipeline computed and stored in the version's manifest; it
covers the episodes that version added (an append's report is about the appended data).
"""
from __future__ import annotations

import argparse
from typing import Any, Mapping, Sequence

from rlstore.cli.formatting import table
from rlstore.errors import StoreError
from rlstore.store import Store

_ELEMENT_ROWS_MAX = 8  # wider fields are summarised in one row of `info`


def register(commands) -> None:
    report = commands.add_parser(
        "report", help="draw a version's quality report as an image",
        description="Draws the quality report stored with NAME[@V] (return and length histograms, the action "
                    "distribution, observation ranges) into FILE; the format follows FILE's suffix (png, svg, pdf).")
    report.add_argument("ref", metavar="NAME[@V]")
    report.add_argument("--out", required=True, metavar="FILE.png", help="image to write")
    report.set_defaults(run=_report)


def _report(store: Store, args: argparse.Namespace, _: Sequence[str]) -> int:
    from rlstore.report_plot import plot_report

    manifest = store.manifest(args.ref)
    report = manifest.data.get("report")
    if report is None:
        raise StoreError(f"{manifest.name}@{manifest.version} has no quality report "
                         "(it was not written by `rlstore ingest`)")
    plot_report(report, f"{manifest.name}@{manifest.version}", args.out)
    print(f"wrote {args.out}")
    return 0


def report_lines(report: Mapping[str, Any] | None) -> list[str]:
    """The quality part of `rlstore info`: counts, warnings and per-feature statistics."""
    if report is None:
        return ["  quality   no report (this version was not written by `rlstore ingest`)"]
    counts, warnings = report["counts"], report["warnings"]
    rejects = report.get("rejects")
    lines = [f"  quality   of the {counts['episodes']} episodes this version added: "
             f"{counts.get('rejected_episodes', 0)} rejected, {len(warnings)} warning(s)"]
    if rejects:
        lines.append(f"    rejects  {rejects['path']} (sha256 {rejects['sha256'][:12]}…)")
    for warning in warnings:
        lines.append(f"    warning  {warning['kind']}: {warning['message']}{_first_place(warning['examples'])}")
    lines.append("  feature statistics (transitions only for action, reward, discount)")
    rows = []
    for field, entry in report["features"].items():
        elements = len(entry["min"])
        names = [field] if elements == 1 else [f"{field}[{i}]" for i in range(elements)]
        if elements > _ELEMENT_ROWS_MAX:
            rows.append([f"{field} ({elements} elements)", _number(min(_known(entry["min"]), default=None)),
                         _number(max(_known(entry["max"]), default=None)), "…", "…"])
            continue
        for i, name in enumerate(names):
            rows.append([name + (" (pooled)" if entry["per"] == "field" else ""), *(
                _number(entry[key][i]) for key in ("min", "max", "mean", "std"))])
    lines.append(table(["field", "min", "max", "mean", "std"], rows, indent=4))
    return lines


def _first_place(examples: Sequence[Mapping[str, Any]]) -> str:
    if not examples or not examples[0].get("file"):
        return ""
    where = examples[0]
    parts = [f"file {where['file']}"] + [f"{k} {where[k]}" for k in ("episode", "step") if where.get(k) is not None]
    return f" (first: {', '.join(parts)})"


def _known(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
