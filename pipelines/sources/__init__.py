"""Source formats the ingest pipeline reads, by name, and `--format auto` detection."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from pipelines.sources.base import SourceFile, SourceFormat, WorkItem, expand_paths
from pipelines.sources.npz import NpzFormat
from pipelines.sources.rlds import RldsFormat
from rlstore.errors import BadInputError, Location

FORMATS: dict[str, SourceFormat] = {f.name: f for f in (RldsFormat(), NpzFormat())}


def get_format(name: str) -> SourceFormat:
    if name not in FORMATS:
        raise BadInputError(f"unknown format {name!r} (known: auto, {', '.join(FORMATS)})")
    return FORMATS[name]


def detect_format(paths: Sequence[Path]) -> SourceFormat:
    """The one format every path looks like; ambiguous or unknown input is an error naming the path."""
    chosen: SourceFormat | None = None
    for path in paths:
        matches = [f for f in FORMATS.values() if f.detect(path)]
        if not matches:
            problem = "directory is empty" if path.is_dir() and not any(path.iterdir()) else \
                "cannot tell the format; pass --format (known: " + ", ".join(FORMATS) + ")"
            raise BadInputError(problem, Location(file=str(path)))
        if chosen is not None and matches[0] is not chosen:
            raise BadInputError(f"inputs mix formats ({chosen.name} and {matches[0].name}); ingest them separately",
                                Location(file=str(path)))
        chosen = matches[0]
    return chosen


__all__ = ["FORMATS", "SourceFile", "SourceFormat", "WorkItem", "detect_format", "expand_paths", "get_format"]
