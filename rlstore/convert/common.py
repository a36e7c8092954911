"""What every export shares: the report, the dispatcher and the rules for what a format drops."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rlstore.errors import StoreError
from rlstore.names import DatasetRef
from rlstore.store import Store

FORMATS = ("minari", "d4rl", "rlds")


@dataclass
class ConvertReport:
    """Where a conversion wrote, how much, and what the target format could not hold."""

    ref: str
    format: str
    out: Path
    episodes: int = 0
    steps: int = 0
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


def convert(store: Store, ref: str | DatasetRef, *, to: str, out: str | os.PathLike,
            progress: Callable[[int], None] | None = None, **options: Any) -> ConvertReport:
    """Writes version `ref` in format `to` at `out`; options go to the format's writer
    (minari: `dataset_id`, `data_format`)."""
    if to not in FORMATS:
        raise StoreError(f"unknown target format {to!r} (choose from {', '.join(FORMATS)})")
    ref = store.resolve(ref)
    report = ConvertReport(str(ref), to, Path(out).resolve())
    if to == "minari":
        from rlstore.convert.minari import write_minari as write
    elif to == "d4rl":
        from rlstore.convert.d4rl import write_d4rl as write
    else:
        from rlstore.convert.rlds import write_rlds as write
    write(store, ref, report.out, report, progress=progress or (lambda _: None), **options)
    return report


def refuse_existing(path: Path) -> None:
    if path.exists() or path.is_symlink():
        raise StoreError(f"{path} already exists: conversions never overwrite; choose another --out")
