"""The dataset store: immutable numbered versions made of TFDS segment directories.

Layout under the root:

    <dataset>/versions/<N>.json     manifest of version N, created once, never rewritten
    <dataset>/segments/<id>/        a complete TFDS dataset directory (RLDS episodes)
    <dataset>/staging/<token>/      one writer's work in progress; never read by readers

Publishing moves finished segment directories into `segments/` with a rename and then claims
version N+1 by hard-linking a fully written manifest to `versions/<N+1>.json`; the link fails
if another writer claimed N+1 first, and the loser rebases onto the winner's version and tries
N+2. So concurrent writers never share a number and never drop each other's segments.

A writer holds an exclusive `flock` on its staging directory for as long as it lives. The lock
dies with the process, even under `kill -9`, which is how the next writer (or `gc`) tells
abandoned staging from work in progress. Locks and hard links need a local or POSIX file
system; object-store roots are not supported yet.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from rlstore import __version__
from rlstore.confinement import UnsafePathError, confine, confine_child
from rlstore.errors import StoreError
from rlstore.manifest import MANIFEST_FORMAT, Manifest, utc_now, writer_identity
from rlstore.names import DatasetRef, parse_ref, validate_name
from rlstore.schema import Schema
from rlstore.stats import EpisodeStats

DEFAULT_ROOT = "~/.rlstore"
ROOT_ENV = "RLSTORE_ROOT"
_LOCK_SUFFIX = ".lock"
_PENDING = "pending.json"


def default_root() -> str:
    """`$RLSTORE_ROOT`, else `~/.rlstore`."""
    return os.environ.get(ROOT_ENV) or DEFAULT_ROOT


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class Staging:
    """A writer's private staging directory, locked for the writer's lifetime.

    The lock is `staging/<token>.lock`, taken before `staging/<token>/` exists. A collector
    deletes a directory only while holding its lock and unlinks the lock file last, so a writer
    re-checks after locking that its lock file is still the one on disk (else it lost a race
    with a collector and starts over with a new token).

    Use as a context manager: on exit everything left in it (segments not published because of
    an error) is deleted, so a failed ingest leaves nothing behind.
    """

    def __init__(self, dataset_dir: Path):
        root = dataset_dir / "staging"
        while True:
            token = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"
            lock_path = root / f"{token}{_LOCK_SUFFIX}"
            root.mkdir(parents=True, exist_ok=True)
            try:
                self._lock = open(lock_path, "a")
            except FileNotFoundError:  # a failed writer removed the new dataset's empty directories
                continue
            fcntl.flock(self._lock, fcntl.LOCK_EX)
            if lock_path.exists() and os.stat(lock_path).st_ino == os.fstat(self._lock.fileno()).st_ino:
                break
            self._lock.close()
        self._lock_path = lock_path
        self.path = root / token
        self.path.mkdir()

    def new_segment_dir(self) -> Path:
        """A fresh directory to build one segment in; its name becomes the segment id."""
        segment = self.path / f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"
        segment.mkdir()
        return segment

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        self._lock_path.unlink(missing_ok=True)
        self._lock.close()

    def __enter__(self) -> "Staging":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Store:
    """A directory of datasets. Everything the CLI does to a store goes through here."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(os.path.expanduser(str(root or default_root()))).resolve()

    # ---- naming and lookup ------------------------------------------------------------------

    def dataset_dir(self, name: str) -> Path:
        path = (self.root / validate_name(name)).resolve()
        if path.parent != self.root:
            raise StoreError(f"dataset {name!r} would escape the store root {self.root}")
        return path

    def datasets(self, notes: list[str] | None = None) -> list[str]:
        """Names of the root's datasets that have a version. Other entries (`lost+found`, `d.bak`,
        stray files) are skipped, and described in `notes` if given."""
        names = []
        for name in self._dataset_candidates(notes):
            if self.versions(name):
                names.append(name)
            elif notes is not None and not (self.root / name / "staging").is_dir():  # staging: being created
                notes.append(f"{self.root / name}: not a dataset (no versions)")
        return names

    def versions(self, name: str) -> list[int]:
        directory = self.dataset_dir(name) / "versions"
        if not directory.is_dir():
            return []
        return sorted(int(p.stem) for p in directory.glob("*.json") if p.stem.isascii() and p.stem.isdigit())

    def resolve(self, ref: str | DatasetRef) -> DatasetRef:
        """Turns `NAME` or `NAME@N` into a concrete, existing version."""
        ref = parse_ref(ref) if isinstance(ref, str) else ref
        versions = self.versions(ref.name)
        if not versions:
            known = ", ".join(self.datasets()) or "none"
            raise StoreError(f"no dataset named {ref.name!r} in store {self.root} (datasets: {known})")
        if ref.version is None:
            return DatasetRef(ref.name, versions[-1])
        if ref.version not in versions:
            raise StoreError(f"{ref.name} has no version {ref.version} (versions: {versions[0]}..{versions[-1]})")
        return ref

    def manifest(self, ref: str | DatasetRef) -> Manifest:
        ref = self.resolve(ref)
        path = self.dataset_dir(ref.name) / "versions" / f"{ref.version}.json"
        try:
            return Manifest(json.loads(path.read_text()))
        except (OSError, ValueError) as error:
            raise StoreError(f"{path}: damaged manifest: cannot read it ({error})") from None

    def segment_dirs(self, ref: str | DatasetRef) -> list[Path]:
        """Absolute paths of a version's TFDS segment directories."""
        manifest = self.manifest(ref)
        return [self.segment_dir(manifest.name, segment) for segment in manifest.segments]

    def segment_dir(self, name: str, segment: Mapping[str, Any]) -> Path:
        """The directory of one manifest segment record, which must lie in `segments/`."""
        segments = self.dataset_dir(name) / "segments"
        path = confine(self.dataset_dir(name), segment.get("path"), what="segment path")
        if path.parent != segments.resolve():
            raise UnsafePathError(f"segment path {segment.get('path')!r} is not inside {segments}")
        return path

    def shard_paths(self, ref: str | DatasetRef) -> list[Path]:
        """Every TFRecord shard of a version, in manifest order (segments, then shards)."""
        manifest = self.manifest(ref)
        return [shard_path(self.segment_dir(manifest.name, segment), shard)
                for segment in manifest.segments for shard in segment["shards"]]

    # ---- reading ----------------------------------------------------------------------------

    def builder(self, ref: str | DatasetRef):
        """A stock TFDS builder over every segment of the version."""
        import tensorflow_datasets as tfds

        return tfds.builder_from_directories([str(p) for p in self.segment_dirs(ref)])

    def load(self, ref: str | DatasetRef, shuffle_files: bool = False):
        """A tf.data.Dataset of RLDS episodes (`{'steps': Dataset, ...}`) of one version."""
        return self.builder(ref).as_dataset(split="train", shuffle_files=shuffle_files)

    # ---- writing ----------------------------------------------------------------------------

    def staging(self, name: str) -> Staging:
        """A locked staging area for a new writer, after removing what dead writers left."""
        self.collect_garbage(name, orphans=False)  # orphans read every version: only on `gc`
        return Staging(self.dataset_dir(name))

    def publish(
        self,
        name: str,
        staging: Staging,
        segments: Sequence[Mapping[str, Any]],
        schema: Schema,
        lineage: Mapping[str, Any],
        report: Mapping[str, Any] | None = None,
    ) -> Manifest:
        """Moves staged segments into the dataset and publishes them as a new version.

        `segments` are records built by the segment writer, whose `path` is still inside
        `staging`. Appending never copies existing data: the new version lists the parent's
        segments plus these. `report` (the ingest's quality report of these segments) is kept
        in the manifest as is.
        """
        if not segments:
            raise StoreError("nothing to publish: no segments were written")
        dataset_dir = self.dataset_dir(name)
        (dataset_dir / "segments").mkdir(parents=True, exist_ok=True)
        (dataset_dir / "versions").mkdir(parents=True, exist_ok=True)
        moved = []
        # Written aside and renamed: a writer killed mid-write must not leave a truncated list
        # that the next writer's garbage collection cannot parse.
        pending = staging.path / (_PENDING + ".tmp")
        pending.write_text(json.dumps([Path(s["path"]).name for s in segments]))
        os.replace(pending, staging.path / _PENDING)
        with _returned_on_failure(dataset_dir / "segments", staging.path) as returned:
            for record in segments:
                source = Path(record["path"])
                target = dataset_dir / "segments" / source.name
                os.rename(source, target)
                returned.append(source.name)
                moved.append({**record, "path": f"segments/{source.name}"})
            while True:
                versions = self.versions(name)
                parent = self.manifest(DatasetRef(name, versions[-1])) if versions else None
                if parent is not None and (problem := parent.schema.difference(schema)):
                    raise StoreError(f"cannot append to {name}: {problem}")
                number = (parent.version if parent else 0) + 1
                manifest = _manifest_document(name, number, parent, moved, schema, lineage, report)
                if self._claim(dataset_dir, number, manifest, staging):
                    returned.clear()  # published: the segments stay
                    break
        (staging.path / _PENDING).unlink()
        return Manifest(manifest)

    def remove_if_empty(self, name: str) -> None:
        """Removes a dataset's directories if they hold nothing at all: a failed first write
        must not leave an empty dataset behind. Only empty directories are ever removed."""
        directory = self.dataset_dir(name)
        for path in (directory / "staging", directory / "segments", directory / "versions", directory):
            try:
                path.rmdir()
            except OSError:
                pass

    def _claim(self, dataset_dir: Path, number: int, manifest: Mapping[str, Any], staging: Staging) -> bool:
        temporary = staging.path / f"version-{number}.json"
        temporary.write_text(json.dumps(manifest, sort_keys=True))  # compact: the C encoder, not the indenting one
        with open(temporary, "rb") as stream:
            os.fsync(stream.fileno())
        try:
            os.link(temporary, dataset_dir / "versions" / f"{number}.json")
        except FileExistsError:
            return False
        finally:
            temporary.unlink()
        return True

    # ---- housekeeping -----------------------------------------------------------------------

    def collect_garbage(self, name: str | None = None, orphans: bool = True) -> "GarbageReport":
        """Removes staging left by dead writers and the unpublished segments they moved, and
        (with `orphans`) segments no version and no live writer refers to.

        A staging lock that can be taken belongs to no living process. The directory's
        `pending.json` names segments that were moved into `segments/` but never made it into a
        version; those are deleted unless some version references them. Only real directories
        inside the dataset are ever deleted: a name that is not a dataset, a symlink, or a
        pending entry that would leave `segments/` is skipped and reported.
        """
        report = GarbageReport()
        for dataset in [name] if name else self._dataset_candidates(report.skipped):
            staging_root = self.dataset_dir(dataset) / "staging"
            if not staging_root.is_dir() or staging_root.is_symlink():
                continue
            for lock_path in staging_root.glob(f"*{_LOCK_SUFFIX}"):
                if lock_path.is_symlink():
                    report.skipped.append(f"{lock_path}: a symlink, not a staging lock")
                    continue
                with open(lock_path, "a") as lock:
                    try:
                        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue
                    area = staging_root / lock_path.name[: -len(_LOCK_SUFFIX)]
                    self._remove_abandoned(dataset, area, report)
                    lock_path.unlink(missing_ok=True)
            for area in staging_root.iterdir():
                if (area.is_dir() or area.is_symlink()) and not area.with_name(area.name + _LOCK_SUFFIX).exists():
                    self._remove_abandoned(dataset, area, report)
        if orphans:
            for dataset in [name] if name else self.datasets():
                self._remove_orphans(dataset, report)
        return report

    def _remove_orphans(self, dataset: str, report: "GarbageReport") -> None:
        """Deletes segment directories that no version refers to and no live writer is publishing.

        Listed first, then the live writers' pending lists, then the versions: a writer names its
        segments in `pending.json` before moving them in and unlinks it only after its version
        exists, so a segment seen in the listing is in one of the two later reads unless its
        writer is gone. If any version cannot be read, nothing is deleted.
        """
        segments = self.dataset_dir(dataset) / "segments"
        if not segments.is_dir() or segments.is_symlink():
            return
        present = sorted(segments.iterdir())
        staging_root = self.dataset_dir(dataset) / "staging"
        live = {segment_id for area in (staging_root.iterdir() if staging_root.is_dir() else [])
                if (area / _PENDING).is_file() for segment_id in _read_pending(area / _PENDING)}
        try:
            referenced = self._referenced_segments(dataset)
        except StoreError as error:
            report.skipped.append(f"{segments}: orphan segments not collected, a version is unreadable "
                                  f"({error.readable()})")
            return
        for path in present:
            if path.name in live or path.name in referenced:
                continue
            if path.is_symlink() or not path.is_dir():
                report.skipped.append(f"{path}: not a segment directory (symlink or file), left alone")
                continue
            shutil.rmtree(path, ignore_errors=True)
            report.removed.append(path)

    def _dataset_candidates(self, notes: list[str] | None = None) -> list[str]:
        """Names of the root's entries that can be datasets; the rest are noted and left alone."""
        if not self.root.is_dir():
            return []
        names = []
        for entry in sorted(self.root.iterdir()):
            try:
                self.dataset_dir(entry.name)
            except StoreError as error:
                if notes is not None:
                    notes.append(f"{entry}: not a dataset ({error.readable()})")
                continue
            names.append(entry.name)
        return names

    def _remove_abandoned(self, dataset: str, area: Path, report: "GarbageReport") -> None:
        if area.is_symlink() or not area.is_dir():
            report.skipped.append(f"{area}: not a staging directory (symlink or file), left alone")
            return
        pending = area / _PENDING
        if pending.exists():
            referenced = self._referenced_segments(dataset)
            segments = self.dataset_dir(dataset) / "segments"
            for segment_id in _read_pending(pending):
                try:
                    segment = confine_child(segments, segment_id, what=f"{pending}: pending segment")
                except UnsafePathError as error:
                    report.skipped.append(error.readable())
                    continue
                if segment_id not in referenced and segment.is_dir() and not segment.is_symlink():
                    shutil.rmtree(segment)
                    report.removed.append(segment)
        shutil.rmtree(area, ignore_errors=True)
        report.removed.append(area)

    def _referenced_segments(self, name: str) -> set[str]:
        referenced: set[str] = set()
        for version in self.versions(name):
            referenced.update(Path(s["path"]).name for s in self.manifest(DatasetRef(name, version)).segments)
        return referenced


@dataclass
class GarbageReport:
    """What `collect_garbage` deleted, and what it found suspicious and left alone."""

    removed: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def shard_path(segment_dir: Path, entry: Mapping[str, Any]) -> Path:
    """A shard or metadata file named by a manifest entry, confined to its segment."""
    return confine(segment_dir, entry.get("file"), what="shard file")


@contextmanager
def _returned_on_failure(segments: Path, staging: Path) -> Iterator[list[str]]:
    """Segments moved into `segments/` go back into the staging area (and die with it) if the
    publish fails before its version is claimed; the caller empties the list once claimed."""
    returned: list[str] = []
    try:
        yield returned
    except BaseException:
        for segment_id in returned:
            try:
                os.rename(segments / segment_id, staging / segment_id)
            except OSError:
                pass  # left for `gc`, which collects segments that nothing refers to
        raise


def _read_pending(path: Path) -> list:
    """The segment ids of a staging `pending.json`; unreadable content counts as none."""
    try:
        ids = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return ids if isinstance(ids, list) else []


def _manifest_document(
    name: str,
    number: int,
    parent: Manifest | None,
    new_segments: Iterable[Mapping[str, Any]],
    schema: Schema,
    lineage: Mapping[str, Any],
    report: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    added = [{**segment, "added_in": number} for segment in new_segments]
    segments = (parent.segments if parent else []) + added
    stats = EpisodeStats.empty()
    for segment in segments:
        stats = stats.merge(EpisodeStats.from_json(segment["stats"]))
    document = {
        "format": MANIFEST_FORMAT,
        "dataset": name,
        "version": number,
        "created": utc_now(),
        "rlstore_version": __version__,
        "writer": writer_identity(),
        "lineage": {**lineage, "parent_version": parent.version if parent else None},
        "schema": schema.to_json(),
        "segments": segments,
        "num_episodes": sum(s["num_episodes"] for s in segments),
        "num_steps": sum(s["num_steps"] for s in segments),
        "stats": stats.to_json(),
    }
    if report is not None:
        document["report"] = dict(report)
    return document
