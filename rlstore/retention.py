"""Retention: deleting old versions on purpose (`prune`) and what nothing refers to (`gc`).

Versions are immutable, so a dataset only grows until someone decides what to forget. `prune`
deletes the versions a rule selects (`keep_last`: all but the newest N; `before`: every version
below V), then the segments and segment lists that only those versions referred to. The latest
version is never deleted, and neither is a version that a run manifest (`run.json`) in the
given runs directory names, unless `force`. What is deleted is written to the dataset's log
first (`log.jsonl`), so an interrupted prune is finished by running it again, and `validate`
can tell a pruned parent from a lost one.

`collect_orphans` (behind `rlstore gc`) removes segments and segment lists that no version and
no staging area names (left by a writer that died between its steps, or by an interrupted
prune), and replay checkpoints of versions that no longer exist, unless a run names them.
Candidates are listed before the references are read, and a writer names what it puts in
place in its staging area before it does so: whatever appears meanwhile is never taken.
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from rlstore import segment_lists
from rlstore.errors import StoreError
from rlstore.store import GarbageReport, References, Store, read_pending

RUN_MANIFEST = "run.json"
REPLAY_CHECKPOINTS = "replay_checkpoints"
_CHECKPOINT_VERSION = re.compile(r"v([0-9]+)-")


@dataclass
class PruneReport:
    """What `prune` deleted, and the versions it kept because runs pin them."""

    name: str
    deleted_versions: list[int] = field(default_factory=list)
    pinned: dict[int, list[str]] = field(default_factory=dict)
    deleted_segments: list[str] = field(default_factory=list)
    deleted_segment_lists: int = 0
    bytes_freed: int = 0


def run_references(runs_dir: str | Path | None) -> dict[str, list[Any]]:
    """Every run manifest under `runs_dir` and the JSON values it holds (see `pinned_versions`)."""
    if runs_dir is None:
        return {}
    root = Path(runs_dir)
    if not root.is_dir():
        raise StoreError(f"runs directory {root} does not exist")
    found = {}
    for path in sorted(root.rglob(RUN_MANIFEST)):
        try:
            found[str(path)] = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise StoreError(f"{path}: cannot read run manifest ({error}); pruning needs to know what it pins") from None
    return found


def pinned_versions(name: str, runs: dict[str, Any]) -> dict[int, list[str]]:
    """Versions of `name` that run manifests name, with the manifests naming each: as `NAME@V`,
    as `{"name"|"dataset": NAME, "version": V}` or as `{"dataset": NAME, "versions": [...]}`."""
    pins: dict[int, list[str]] = {}
    pattern = re.compile(rf"{re.escape(name)}@([0-9]+)")

    def visit(value: Any, path: str) -> None:
        if isinstance(value, str) and (match := pattern.fullmatch(value)):
            pins.setdefault(int(match.group(1)), []).append(path)
        elif isinstance(value, dict):
            if name in (value.get("name"), value.get("dataset")):
                versions = [value.get("version")] + list(value.get("versions") or [])
                for version in versions:
                    if isinstance(version, int):
                        pins.setdefault(version, []).append(path)
            for item in value.values():
                visit(item, path)
        elif isinstance(value, list):
            for item in value:
                visit(item, path)

    for path, document in runs.items():
        visit(document, path)
    return {version: sorted(set(paths)) for version, paths in pins.items()}


def prune(
    store: Store,
    name: str,
    keep_last: int | None = None,
    before: int | None = None,
    runs_dir: str | Path | None = None,
    force: bool = False,
) -> PruneReport:
    """Deletes the versions selected by every rule given (and never the latest), then what
    only they referred to. Versions pinned by a run manifest under `runs_dir` are kept unless
    `force`."""
    if keep_last is None and before is None:
        raise StoreError("prune needs --keep-last N or --before V (or both)")
    if keep_last is not None and keep_last < 1:
        raise StoreError(f"--keep-last must be at least 1, not {keep_last}")
    versions = store.versions(name)
    if not versions:
        store.resolve(name)
    selected = set(versions[:-1])
    if keep_last is not None:
        selected &= set(versions[:-keep_last])
    if before is not None:
        selected &= {v for v in versions if v < before}
    report = PruneReport(name)
    pins = pinned_versions(name, run_references(runs_dir))
    if not force:
        report.pinned = {v: paths for v, paths in pins.items() if v in selected}
        selected -= set(report.pinned)
    if not selected:
        return report
    kept = [v for v in versions if v not in selected]
    doomed = store.referenced(name, sorted(selected))
    alive = store.referenced(name, kept)
    segments = sorted(doomed.segments - alive.segments)
    lists = sorted(doomed.segment_lists - alive.segment_lists)
    dataset_dir = store.dataset_dir(name)
    report.bytes_freed = sum(_size(dataset_dir / "segments" / s) for s in segments) + sum(
        _size(store.segment_list_path(name, sha)) for sha in lists) + sum(
        _size(store.version_path(name, v)) for v in selected)
    store.append_log(name, {"event": "prune", "versions": sorted(selected), "segments": segments,
                            "segment_lists": lists, "bytes": report.bytes_freed, "forced": force,
                            "pinned_and_deleted": sorted(v for v in selected if v in pins)})
    for version in sorted(selected):
        store.version_path(name, version).unlink(missing_ok=True)
    garbage = GarbageReport()
    store.remove_unreferenced(name, segments, lists, alive, garbage, where="prune")
    report.deleted_versions = sorted(selected)
    report.deleted_segments = segments
    report.deleted_segment_lists = len(lists)
    return report


def collect_orphans(store: Store, name: str, report: GarbageReport, runs_dir: str | Path | None = None) -> None:
    """Removes segments and segment lists no version and no staging area names, and replay
    checkpoints of versions that no longer exist (unless a run under `runs_dir` names one)."""
    dataset_dir = store.dataset_dir(name)
    segment_candidates = _entries(dataset_dir / "segments", directories=True)
    list_candidates = [entry[: -len(".json")] for entry in _entries(dataset_dir / segment_lists.DIRECTORY)
                       if entry.endswith(".json")]
    staged = _staged(dataset_dir / "staging")
    referenced = store.referenced(name)
    store.remove_unreferenced(name, [s for s in segment_candidates if s not in staged.segments],
                               [sha for sha in list_candidates if sha not in staged.segment_lists],
                               referenced, report, where="orphan")
    checkpoints = dataset_dir / REPLAY_CHECKPOINTS
    if not checkpoints.is_dir() or checkpoints.is_symlink():
        return
    versions = set(store.versions(name))
    named_by_runs = json.dumps(run_references(runs_dir))
    for entry in sorted(checkpoints.iterdir()):
        match = _CHECKPOINT_VERSION.match(entry.name)
        if entry.is_symlink() or not entry.is_dir() or not match:
            report.skipped.append(f"{entry}: not a replay checkpoint directory, left alone")
            continue
        if int(match.group(1)) not in versions and entry.name not in named_by_runs:
            shutil.rmtree(entry)
            report.removed.append(entry)


def _staged(staging: Path) -> References:
    """What every staging area (live or not) names as put in place but not published yet."""
    staged = References()
    for pending in staging.glob("*/pending.json") if staging.is_dir() else []:
        names = read_pending(pending)
        staged.segments.update(s for s in names["segments"] if isinstance(s, str))
        staged.segment_lists.update(s for s in names["segment_lists"] if isinstance(s, str))
    return staged


def _entries(directory: Path, directories: bool = False) -> Iterable[str]:
    if not directory.is_dir():
        return []
    return [p.name for p in directory.iterdir() if p.is_dir() == directories and not p.is_symlink()]


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0
