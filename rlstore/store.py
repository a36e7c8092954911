"""The dataset store: immutable numbered versions made of TFDS segment directories.

Layout under the root:

    <dataset>/versions/<N>.json          version N (format 2, sealed): header and references to
                                         segment lists; created once, never rewritten
    <dataset>/segment-lists/<sha>.json   immutable lists of segment records, shared by versions
    <dataset>/segments/<id>/             a complete TFDS dataset directory (RLDS episodes)
    <dataset>/staging/<token>/           one writer's work in progress; never read by readers
    <dataset>/log.jsonl                  what housekeeping (prune, gc) deleted, one JSON a line

Publishing moves finished segment directories into `segments/`, writes the segment lists the new
version needs (`rlstore.segment_lists`: a commit writes metadata in proportion to what it adds)
and then claims version N+1 with `_claim`, which creates `versions/<N+1>.json` only if it does
not exist yet (a hard link of the fully written file today; an object store's conditional
create later). The loser of a race rebases onto the winner's version and tries N+2. So
concurrent writers never share a number and never drop each other's segments.

A writer holds an exclusive `flock` on its staging directory for as long as it lives. The lock
dies with the process, even under `kill -9`, which is how the next writer (or `gc`) tells
abandoned staging from work in progress. What a writer has put in place but not yet published
(segments, segment lists) is named in its staging `pending.json` first, so `gc` never takes it
for an orphan. Locks and hard links need a local or POSIX file system. A root such as
`s3://bucket/prefix` or `gs://bucket/prefix` makes a `rlstore.remote_store.RemoteStore` instead (`Store(root)` picks the
class): the same layout in a bucket, with the storage steps (`_list_names`, `read_file`,
`_place_segment`, `_write_once`, `_claim`, the staging lease) done by the object store.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
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
from rlstore.fs import LocalFileSystem, is_remote
from rlstore import segment_lists
from rlstore.manifest import (FORMAT_1, MANIFEST_FORMAT, DamagedManifestError, Manifest, parse_manifest, seal,
                              utc_now, writer_identity)
from rlstore.names import DatasetRef, parse_ref, validate_name
from rlstore.schema import Schema
from rlstore.segment import rename_shard
from rlstore.shard_formats import segment_format
from rlstore.shard_targets import RESULT_FILE, ShardTarget
from rlstore.stats import EpisodeStats

DEFAULT_ROOT = "~/.rlstore"
ROOT_ENV = "RLSTORE_ROOT"
_LOCK_SUFFIX = ".lock"
_PENDING = "pending.json"
_LOG = "log.jsonl"
_VERSION_FILE = re.compile(r"[1-9][0-9]*\.json")


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

    def shard_target(self, segment_dir: Path) -> ShardTarget:
        """Where Beam workers put the shards of `segment_dir` and the pipeline's result: here,
        in place (a store in a bucket has its workers upload them, `RemoteStaging`)."""
        return ShardTarget(segment_dir, self.path / RESULT_FILE)

    def name_shard(self, segment_dir: Path, file: str, final: str) -> None:
        """Gives a closed shard its final TFDS name (`finish_segment`)."""
        rename_shard(segment_dir, file, final)

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        self._lock_path.unlink(missing_ok=True)
        self._lock.close()

    def __enter__(self) -> "Staging":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Store:
    """A directory of datasets. Everything the CLI does to a store goes through here.

    `Store("s3://bucket/prefix")` (or such a `$RLSTORE_ROOT`) gives a `RemoteStore`: every caller
    that makes a `Store` from a root string works with buckets unchanged.
    """

    def __new__(cls, root: str | os.PathLike | None = None):
        if cls is Store and is_remote(root or default_root()):
            from rlstore.remote_store import RemoteStore

            return super().__new__(RemoteStore)
        return super().__new__(cls)

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(os.path.expanduser(str(root or default_root()))).resolve()

    def __getnewargs__(self) -> tuple[str]:
        return (self.location,)  # unpickling makes the same kind of store, whatever $RLSTORE_ROOT says

    @property
    def location(self) -> str:
        """The root as a user names it: a directory path, or a URL for an object store."""
        return str(self.root)

    # ---- storage steps (a RemoteStore does these in its bucket) --------------------------------

    def read_file(self, path: Path) -> bytes:
        """The bytes of a store file; FileNotFoundError if it does not exist."""
        return path.read_bytes()

    def has_file(self, path: Path) -> bool:
        return path.is_file()

    def _list_names(self, directory: Path) -> list[str]:
        """Names of a store directory's entries; [] if it does not exist."""
        try:
            return sorted(os.listdir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def _open_staging(self, name: str) -> "Staging":
        return Staging(self.dataset_dir(name))

    def _place_segment(self, source: Path, target: Path, staging: "Staging") -> None:
        """Moves a finished segment from staging to `segments/`."""
        os.rename(source, target)

    def _return_segment(self, target: Path, source: Path) -> None:
        """Undoes `_place_segment` for a publish that failed before its claim."""
        os.rename(target, source)

    def _write_once(self, path: Path, raw: bytes, staging: "Staging") -> None:
        write_once(path, raw, staging)

    def _write_pending(self, staging: "Staging", pending: Mapping[str, list] | None) -> None:
        """Records (or, with None, clears) what the writer put in place but has not published."""
        if pending is None:
            (staging.path / _PENDING).unlink()
        else:
            write_pending(staging, pending)

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
            elif notes is not None and "staging" not in self._list_names(self.root / name):  # being created
                notes.append(f"{self.root / name}: not a dataset (no versions)")
        return names

    def versions(self, name: str) -> list[int]:
        """Every published version number, ascending (one directory listing: fast at 10,000s)."""
        entries = self._list_names(self.dataset_dir(name) / "versions")
        return sorted(int(entry[:-5]) for entry in entries if _VERSION_FILE.fullmatch(entry))

    def resolve(self, ref: str | DatasetRef) -> DatasetRef:
        """Turns `NAME` or `NAME@N` into a concrete, existing version."""
        ref = parse_ref(ref) if isinstance(ref, str) else ref
        if ref.version is not None and self.has_file(self.version_path(ref.name, ref.version)):
            return ref  # a pinned version opens without listing the others
        versions = self.versions(ref.name)
        if not versions:
            known = ", ".join(self.datasets()) or "none"
            raise StoreError(f"no dataset named {ref.name!r} in store {self.location} (datasets: {known})")
        if ref.version is None:
            return DatasetRef(ref.name, versions[-1])
        if ref.version not in versions:
            raise StoreError(f"{ref.name} has no version {ref.version} (versions: {versions[0]}..{versions[-1]})")
        return ref

    def manifest(self, ref: str | DatasetRef) -> Manifest:
        ref = self.resolve(ref)
        return self.read_version(ref.name, ref.version)

    def version_path(self, name: str, version: int) -> Path:
        return self.dataset_dir(name) / "versions" / f"{version}.json"

    def read_version(self, name: str, version: int) -> Manifest:
        """The one place a version file is read: a StoreError naming the file if it is missing
        or damaged (bad JSON, a format-2 checksum that does not match, missing keys)."""
        path = self.version_path(name, version)
        try:
            raw = self.read_file(path)
        except OSError as error:
            raise StoreError(f"{self.shown(path)}: cannot read version {name}@{version}: {error.strerror}") from None
        document = parse_manifest(self.shown(path), raw, expected_version=version)
        return Manifest(document, self.shown(path), hashlib.sha256(raw).hexdigest(),
                        lambda reference: self._read_list(name, reference))

    def segment_list_path(self, name: str, sha256: object) -> Path:
        """A segment list named by a version, confined to the dataset's `segment-lists/`."""
        directory = self.dataset_dir(name) / segment_lists.DIRECTORY
        if not isinstance(sha256, str) or len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise UnsafePathError(f"segment list {sha256!r} is not a sha256")
        return confine_child(directory, segment_lists.file_name(sha256), what="segment list")

    def _read_list(self, name: str, reference: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        path = self.segment_list_path(name, reference.get("sha256"))
        try:
            raw = self.read_file(path)
        except OSError as error:
            raise DamagedManifestError(self.shown(path), f"segment list cannot be read: {error.strerror}") from None
        return segment_lists.decode(self.shown(path), raw, reference)

    def shown(self, path: Path) -> str:
        """A store file as messages name it (its URL in an object store)."""
        return str(path)

    def segment_dirs(self, ref: str | DatasetRef) -> list[Path]:
        """Local paths of a version's TFDS segment directories, ready to read (an object store's
        are fetched into the local read cache first)."""
        manifest = self.manifest(ref)
        return [self.readable_segment_dir(manifest.name, segment) for segment in manifest.segments]

    def readable_segment_dir(self, name: str, segment: Mapping[str, Any], fresh: bool = False) -> Path:
        """`segment_dir`, with its files on local disk (`fresh`: fetched again from an object
        store even if cached, as `validate` checks the stored bytes)."""
        return self.segment_dir(name, segment)

    def segment_dir(self, name: str, segment: Mapping[str, Any]) -> Path:
        """The directory of one manifest segment record, which must lie in `segments/`."""
        segments = self.dataset_dir(name) / "segments"
        path = confine(self.dataset_dir(name), segment.get("path"), what="segment path")
        if path.parent != segments.resolve():
            raise UnsafePathError(f"segment path {segment.get('path')!r} is not inside {segments}")
        return path

    def shard_paths(self, ref: str | DatasetRef) -> list[Path]:
        """Every shard file of a version (TFRecord or Parquet), in manifest order (segments, then shards)."""
        manifest = self.manifest(ref)
        return [shard_path(self.readable_segment_dir(manifest.name, segment), shard)
                for segment in manifest.segments for shard in segment["shards"]]

    # ---- reading ----------------------------------------------------------------------------

    def builder(self, ref: str | DatasetRef):
        """A stock TFDS builder over every segment of the version."""
        import tensorflow_datasets as tfds

        return tfds.builder_from_directories([str(p) for p in self.segment_dirs(ref)])

    def load(self, ref: str | DatasetRef, shuffle_files: bool = False, split: str | None = None):
        """A tf.data.Dataset of RLDS episodes (`{'steps': Dataset, ...}`) of one version: the
        episodes of `split` (a TFDS split name or expression, e.g. 'val'), or of every split."""
        builder = self.builder(ref)
        return builder.as_dataset(split=split or "+".join(builder.info.splits), shuffle_files=shuffle_files)

    # ---- writing ----------------------------------------------------------------------------

    def staging(self, name: str) -> Staging:
        """A locked staging area for a new writer, after removing what dead writers left."""
        self.collect_garbage(name)
        return self._open_staging(name)

    def publish(
        self,
        name: str,
        staging: Staging,
        segments: Sequence[Mapping[str, Any]],
        schema: Schema,
        lineage: Mapping[str, Any],
        report: Mapping[str, Any] | None = None,
        removed: Sequence[str] = (),
    ) -> Manifest:
        """Moves staged segments into the dataset and publishes them as a new version.

        `segments` are records built by the segment writer, whose `path` is still inside
        `staging`. Appending never copies existing data: the new version lists the parent's
        segments plus these, minus the ids in `removed` (compaction replaces segments by
        others holding the same episodes). The schema and shard format must be the parent's,
        unless every parent segment is removed (a shard-format conversion). `report` (the
        ingest's quality report of these segments) is kept in the manifest as is.
        """
        if not segments:
            raise StoreError("nothing to publish: no segments were written")
        dataset_dir = self.dataset_dir(name)
        for directory in ("segments", "versions", segment_lists.DIRECTORY):
            (dataset_dir / directory).mkdir(parents=True, exist_ok=True)
        pending = {"segments": [Path(s["path"]).name for s in segments], "segment_lists": []}
        self._write_pending(staging, pending)
        moved = []
        with self._returned_on_failure(dataset_dir / "segments", staging.path) as returned:
            for record in segments:
                source = Path(record["path"])
                target = dataset_dir / "segments" / source.name
                self._place_segment(source, target, staging)
                returned.append(source.name)
                moved.append({**record, "path": f"segments/{source.name}"})
            while True:
                versions = self.versions(name)
                parent = self.read_version(name, versions[-1]) if versions else None
                kept = parent if parent is not None and not _replaces_every_segment(parent, removed) else None
                if kept is not None and (problem := kept.schema.difference(schema)):
                    raise StoreError(f"cannot append to {name}: {problem}")
                _check_one_shard_format(name, kept, moved)
                number = (parent.version if parent else 0) + 1
                added = [{**segment, "added_in": number} for segment in moved]
                plan = self._plan_lists(name, parent, added, removed)
                pending["segment_lists"] += [sha for sha in plan.new_files if sha not in pending["segment_lists"]]
                self._write_pending(staging, pending)
                for sha, raw in plan.new_files.items():
                    self._write_once(dataset_dir / segment_lists.DIRECTORY / segment_lists.file_name(sha), raw, staging)
                document = _version_document(name, number, parent, added, removed, plan.references, schema, lineage,
                                             report, self._totals(name, parent, added, plan.references, removed))
                raw = seal(document)
                if self._claim(dataset_dir, number, raw, staging):
                    returned.clear()  # published: the segments stay
                    break
        self._write_pending(staging, None)
        return self.read_version(name, number)

    def remove_if_empty(self, name: str) -> None:
        """Removes a dataset's directories if they hold nothing at all: a failed first write
        must not leave an empty dataset behind. Only empty directories are ever removed."""
        directory = self.dataset_dir(name)
        for path in (directory / "staging", directory / "segments", directory / "versions",
                     directory / segment_lists.DIRECTORY, directory):
            try:
                path.rmdir()
            except OSError:
                pass

    def _plan_lists(self, name: str, parent: Manifest | None, added: Sequence[Mapping[str, Any]],
                    removed: Sequence[str]) -> segment_lists.Plan:
        if removed:
            present = {s["id"] for s in parent.segments} if parent else set()
            if missing := [segment_id for segment_id in removed if segment_id not in present]:
                raise StoreError(f"cannot replace segments of {name}: the latest version no longer holds "
                                 f"{', '.join(missing[:3])} (another writer compacted or replaced them)")
        if parent is None:
            return segment_lists.plan([], added, removed, lambda ref: self._read_list(name, ref))
        if parent.format == FORMAT_1:
            return segment_lists.plan([], added, removed, lambda ref: self._read_list(name, ref), seed=parent.segments)
        return segment_lists.plan(parent.data["segment_lists"], added, removed, lambda ref: self._read_list(name, ref))

    def _totals(self, name: str, parent: Manifest | None, added: Sequence[Mapping[str, Any]],
                references: Sequence[Mapping[str, Any]], removed: Sequence[str]) -> dict[str, Any]:
        """Counts and statistics of the new version: the parent's plus what is added, or, when
        segments are removed, summed again over every segment of the new version."""
        if removed or parent is None:
            segments = [s for ref in references for s in self._read_list(name, ref)] if removed else added
            base = {"num_episodes": 0, "num_steps": 0, "num_segments": 0, "stats": EpisodeStats.empty()}
        else:
            segments = added
            base = {"num_episodes": parent.num_episodes, "num_steps": parent.num_steps,
                    "num_segments": parent.num_segments, "stats": parent.stats}
        stats = base["stats"]
        for segment in segments:
            stats = stats.merge(EpisodeStats.from_json(segment["stats"]))
        return {"num_episodes": base["num_episodes"] + sum(s["num_episodes"] for s in segments),
                "num_steps": base["num_steps"] + sum(s["num_steps"] for s in segments),
                "num_segments": base["num_segments"] + len(segments), "stats": stats.to_json()}

    def _claim(self, dataset_dir: Path, number: int, raw: bytes, staging: Staging) -> bool:
        """Creates `versions/<number>.json` holding `raw` if no other writer has: the only
        create-exclusive step of a publish (`RemoteStore` does it with a conditional create)."""
        return LocalFileSystem.create(dataset_dir / "versions" / f"{number}.json", raw, staging.path)

    @contextmanager
    def _returned_on_failure(self, segments: Path, staging: Path) -> Iterator[list[str]]:
        """Segments moved into `segments/` go back into the staging area (and die with it) if the
        publish fails before its version is claimed; the caller empties the list once claimed."""
        returned: list[str] = []
        try:
            yield returned
        except BaseException:
            for segment_id in returned:
                try:
                    self._return_segment(segments / segment_id, staging / segment_id)
                except (OSError, StoreError):
                    pass  # left for `gc`, which collects segments that nothing refers to
            raise

    def has_live_writer(self, name: str) -> bool:
        """Whether some process holds a staging lock of the dataset right now."""
        staging = self.dataset_dir(name) / "staging"
        for lock_path in staging.glob(f"*{_LOCK_SUFFIX}") if staging.is_dir() else []:
            with open(lock_path, "a") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True
        return False

    def migrate(self, name: str):
        """Rewrites a dataset's format-1 versions as format 2 (see `rlstore.migration`)."""
        from rlstore.migration import migrate

        return migrate(self, name)

    def prune(self, name: str, keep_last: int | None = None, before: int | None = None,
              runs_dir: str | os.PathLike | None = None, force: bool = False):
        """Deletes old versions and what only they refer to (see `rlstore.retention`)."""
        from rlstore.retention import prune

        return prune(self, name, keep_last=keep_last, before=before, runs_dir=runs_dir, force=force)

    def compact(self, name: str, target_bytes: int | None = None, progress=None) -> Manifest | None:
        """Publishes the latest version again in fewer, larger segments (see `rlstore.compaction`)."""
        from rlstore.compaction import DEFAULT_TARGET_BYTES, compact

        return compact(self, name, target_bytes or DEFAULT_TARGET_BYTES, progress)

    # ---- the dataset's log ------------------------------------------------------------------

    def log_path(self, name: str) -> Path:
        return self.dataset_dir(name) / _LOG

    def append_log(self, name: str, event: Mapping[str, Any]) -> None:
        """Appends one event (what housekeeping deleted, and why) to the dataset's log."""
        line = json.dumps({"time": utc_now(), "writer": writer_identity(), **event}, sort_keys=True) + "\n"
        with open(self.log_path(name), "a") as stream:
            stream.write(line)
            stream.flush()
            os.fsync(stream.fileno())

    def log_entries(self, name: str) -> list[dict[str, Any]]:
        """The dataset's log, oldest first; lines that are not JSON objects are left out."""
        try:
            lines = self.read_file(self.log_path(name)).decode("utf-8", "replace").splitlines()
        except OSError:
            return []
        entries = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                entries.append(entry)
        return entries

    def pruned_versions(self, name: str) -> set[int]:
        """Versions the log says `prune` deleted."""
        return {v for e in self.log_entries(name) if e.get("event") == "prune"
                for v in e.get("versions", []) if isinstance(v, int)}

    # ---- housekeeping -----------------------------------------------------------------------

    def collect_garbage(self, name: str | None = None, orphans: bool = False,
                        runs_dir: str | os.PathLike | None = None) -> "GarbageReport":
        """Removes staging left by dead writers and the unpublished segments they moved.

        A staging lock that can be taken belongs to no living process. The directory's
        `pending.json` names segments (and segment lists) that were put in place but never made
        it into a version; those are deleted unless some version references them. Only real
        directories inside the dataset are ever deleted: a name that is not a dataset, a
        symlink, or a pending entry that would leave `segments/` is skipped and reported.

        With `orphans` (what `rlstore gc` does; writers opening a staging area do not, as it
        reads every version), it also removes segments and segment lists that no version and no
        staging area names, and replay checkpoints of versions that no longer exist unless a run
        manifest under `runs_dir` names them (`rlstore.retention.collect_orphans`).
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
            from rlstore.retention import collect_orphans

            for dataset in [name] if name else self.datasets():
                collect_orphans(self, dataset, report, runs_dir)
        return report

    def _dataset_candidates(self, notes: list[str] | None = None) -> list[str]:
        """Names of the root's entries that can be datasets; the rest are noted and left alone."""
        names = []
        for entry in self._list_names(self.root):
            try:
                self.dataset_dir(entry)
            except StoreError as error:
                if notes is not None:
                    notes.append(f"{self.shown(self.root / entry)}: not a dataset ({error.readable()})")
                continue
            names.append(entry)
        return names

    def _remove_abandoned(self, dataset: str, area: Path, report: "GarbageReport") -> None:
        if area.is_symlink() or not area.is_dir():
            report.skipped.append(f"{area}: not a staging directory (symlink or file), left alone")
            return
        pending = area / _PENDING
        if pending.exists():
            names = read_pending(pending)
            referenced = self.referenced(dataset)
            self.remove_unreferenced(dataset, names["segments"], names["segment_lists"], referenced, report,
                                      where=str(pending))
        shutil.rmtree(area, ignore_errors=True)
        report.removed.append(area)

    def remove_unreferenced(self, dataset: str, segment_ids: Iterable[object], list_hashes: Iterable[object],
                             referenced: "References", report: "GarbageReport", where: str) -> None:
        """Deletes the named segments and segment lists that no version refers to; names that
        would leave their directory are reported and skipped."""
        segments = self.dataset_dir(dataset) / "segments"
        for segment_id in segment_ids:
            try:
                segment = confine_child(segments, segment_id, what=f"{where}: segment")
            except UnsafePathError as error:
                report.skipped.append(error.readable())
                continue
            if segment_id not in referenced.segments and segment.is_dir() and not segment.is_symlink():
                shutil.rmtree(segment)
                report.removed.append(segment)
        for sha in list_hashes:
            try:
                path = self.segment_list_path(dataset, sha)
            except UnsafePathError as error:
                report.skipped.append(f"{where}: {error.readable()}")
                continue
            if sha not in referenced.segment_lists and path.is_file() and not path.is_symlink():
                path.unlink()
                report.removed.append(path)

    def referenced(self, name: str, versions: Iterable[int] | None = None) -> "References":
        """The segments and segment lists that versions of `name` (default: all) refer to,
        reading each shared segment list once."""
        found = References()
        for version in self.versions(name) if versions is None else versions:
            manifest = self.read_version(name, version)
            if manifest.format == FORMAT_1:
                found.segments.update(Path(s["path"]).name for s in manifest.segments)
                continue
            for reference in manifest.data["segment_lists"]:
                if reference["sha256"] not in found.segment_lists:
                    found.segment_lists.add(reference["sha256"])
                    found.segments.update(Path(s["path"]).name for s in self._read_list(name, reference))
        return found


@dataclass
class References:
    """Segment directory names and segment-list hashes that some versions refer to."""

    segments: set[str] = field(default_factory=set)
    segment_lists: set[str] = field(default_factory=set)


@dataclass
class GarbageReport:
    """What `collect_garbage` deleted, and what it found suspicious and left alone."""

    removed: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _replaces_every_segment(parent: Manifest, removed: Sequence[str]) -> bool:
    """A version that removes every segment of its parent keeps nothing of it, so it may store
    its episodes in another shard format and schema encoding (`rlstore.shard_conversion`)."""
    return bool(removed) and {segment["id"] for segment in parent.segments} <= set(removed)


def _check_one_shard_format(name: str, parent: Manifest | None, added: Sequence[Mapping[str, Any]]) -> None:
    """A version's segments share one shard format: stock TFDS reads all of a version's segment
    directories with the file adapter of the first. A version's format is that of what it added."""
    formats = {segment_format(segment) for segment in added}
    existing = {segment_format(segment) for segment in parent.added[:1]} if parent is not None else set()
    if len(formats | existing) > 1:
        have = f"its segments are stored as {existing.pop()} shards, " if existing else ""
        raise StoreError(f"cannot publish to {name}: {have}these segments as {' and '.join(sorted(formats))} "
                         "(a version keeps one shard format, so that stock TFDS reads it whole)")


def shard_path(segment_dir: Path, entry: Mapping[str, Any]) -> Path:
    """A shard or metadata file named by a manifest entry, confined to its segment."""
    return confine(segment_dir, entry.get("file"), what="shard file")


def read_pending(path: Path) -> dict[str, list]:
    """What a staging `pending.json` names: segment ids and segment-list hashes put in place
    but not yet published. Unreadable content counts as nothing; a bare list (written by
    earlier rlstore versions) holds segment ids."""
    try:
        return parse_pending(path.read_bytes())
    except OSError:
        return {"segments": [], "segment_lists": []}


def parse_pending(raw: bytes) -> dict[str, list]:
    """`read_pending` of a pending list's bytes (a remote store fetches them from its bucket)."""
    try:
        pending = json.loads(raw)
    except ValueError:
        return {"segments": [], "segment_lists": []}
    if isinstance(pending, list):
        pending = {"segments": pending}
    if not isinstance(pending, dict):
        return {"segments": [], "segment_lists": []}
    return {key: value if isinstance(value := pending.get(key), list) else [] for key in ("segments", "segment_lists")}


def write_pending(staging: Staging, pending: Mapping[str, list]) -> None:
    """Written aside and renamed: a writer killed mid-write must not leave a truncated list
    that the next writer's garbage collection cannot parse."""
    temporary = staging.path / (_PENDING + ".tmp")
    temporary.write_text(json.dumps(pending))
    os.replace(temporary, staging.path / _PENDING)


def write_once(path: Path, raw: bytes, staging: Staging) -> None:
    """Puts an immutable, content-addressed file in place (written aside, then renamed); a file
    already there holds the same bytes, so it is left as it is."""
    if path.exists():
        return
    temporary = staging.path / f"{path.name}.tmp"
    with open(temporary, "wb") as stream:
        stream.write(raw)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, path)


def _version_document(
    name: str,
    number: int,
    parent: Manifest | None,
    added: Sequence[Mapping[str, Any]],
    removed: Sequence[str],
    references: Sequence[Mapping[str, Any]],
    schema: Schema,
    lineage: Mapping[str, Any],
    report: Mapping[str, Any] | None,
    totals: Mapping[str, Any],
) -> dict[str, Any]:
    """A format-2 version: its header, what it changed, and the segment lists it is made of."""
    document = {
        "format": MANIFEST_FORMAT,
        "dataset": name,
        "version": number,
        "created": utc_now(),
        "rlstore_version": __version__,
        "writer": writer_identity(),
        "lineage": {**lineage, "parent_version": parent.version if parent else None},
        "parent": {"version": parent.version, "sha256": parent.file_sha256} if parent else None,
        "schema": schema.to_json(),
        "added": [segment["id"] for segment in added],
        "removed": list(removed),
        "segment_lists": list(references),
        **totals,
    }
    if report is not None:
        document["report"] = dict(report)
    return document
