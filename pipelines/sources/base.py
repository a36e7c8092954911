"""What every source format provides, and the path handling they share.

A format turns user-given paths into work items on the driver (cheap: listing, no reading) and
turns one work item into episodes on a worker. Work items are small JSON-able dicts, so any
Beam runner can ship them; each names the file it reads, which is hashed for lineage.
"""
from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Protocol, Sequence

from rlstore.episode import Episode
from rlstore.errors import BadInputError, Location

WorkItem = Mapping[str, Any]


@dataclass(frozen=True)
class SourceFile:
    """A file that was read, for lineage."""

    path: str
    sha256: str
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "bytes": self.bytes}


class SourceFormat(Protocol):
    name: str

    def detect(self, path: Path) -> bool:
        """True if `path` (an existing file or directory) looks like this format."""

    def work_items(self, paths: Sequence[Path]) -> list[WorkItem]:
        """Independent units of reading, in a stable order; raises BadInputError early."""

    def read(self, item: WorkItem) -> Iterator[tuple[Location, Episode]]:
        """The episodes of one work item, each with the location to blame for it."""

    def source_files(self, item: WorkItem) -> list[SourceFile]:
        """The files behind a work item, hashed."""

    def run_metadata(self, paths: Sequence[Path]) -> dict[str, Any]:
        """Metadata about the whole input that belongs in the version's lineage (may be empty)."""


def expand_paths(patterns: Sequence[str]) -> list[Path]:
    """Expands globs, checks existence and drops duplicates (the same file given twice is read once)."""
    if not patterns:
        raise BadInputError("no input paths given")
    seen: dict[str, Path] = {}
    for pattern in patterns:
        matches = sorted(glob.glob(os.path.expanduser(pattern))) if glob.has_magic(pattern) else [os.path.expanduser(pattern)]
        if not matches or not os.path.exists(matches[0]):
            raise BadInputError("no such file or directory" if not glob.has_magic(pattern) else "pattern matches no files",
                                Location(file=pattern))
        for match in matches:
            seen.setdefault(os.path.realpath(match), Path(match).resolve())
    return list(seen.values())


def hash_file(path: str | os.PathLike) -> SourceFile:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
            size += len(block)
    return SourceFile(str(path), digest.hexdigest(), size)


def files_in(directory: Path) -> list[Path]:
    """Regular files below a directory; an empty directory is bad input."""
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    if not files:
        raise BadInputError("directory is empty", Location(file=str(directory)))
    return files


def input_bytes(paths: Sequence[Path]) -> int:
    """The bytes of every file at or below `paths` (what an ingest will read, give or take)."""
    total = 0
    for path in paths:
        files = (p for p in path.rglob("*") if p.is_file()) if path.is_dir() else (path,)
        for file in files:
            try:
                total += file.stat().st_size
            except OSError:  # gone meanwhile: the source reports it when it reads
                pass
    return total
