"""A store whose root is a bucket prefix (`s3://bucket/prefix`): the same layout, as objects.

    s3://bucket/prefix/<dataset>/versions/<N>.json           claimed with a conditional create
    s3://bucket/prefix/<dataset>/segment-lists/<sha>.json     written once (content-addressed)
    s3://bucket/prefix/<dataset>/segments/<id>/<file>         uploaded before the claim
    s3://bucket/prefix/<dataset>/staging/<token>.lease        a live writer's lease, renewed
    s3://bucket/prefix/<dataset>/staging/<token>/pending.json what that writer has uploaded
    s3://bucket/prefix/<dataset>/staging/<token>/<segment>/*  shards its Beam workers uploaded

`RemoteStore` is a `Store` whose storage steps go to the bucket; publishing keeps its order
(segments and lists in place, named in `pending.json`, then the version claimed by one
create-exclusive step, `If-None-Match: *`), so concurrent writers on any hosts get distinct
versions and lose nothing.

Local disk still does two jobs, under one directory per store (`$RLSTORE_CACHE`, default
`~/.cache/rlstore`, then `stores/s3/<bucket>/<prefix>`):
- staging: a segment's metadata (and the shards of writers without workers: an actor's
  write-back, compaction) is built on the writer's disk and uploaded by the process that
  publishes. An ingest's Beam workers upload their shards themselves into the writer's
  staging area in the bucket (`rlstore.shard_targets`), and publishing copies them to
  `segments/` inside the bucket, so no shard passes through the driver;
- reading: TensorFlow 2.15 cannot open `s3://` without tensorflow-io, so readers get local
  segment directories whose files are hard links into a content-addressed cache
  (`objects/<sha256>`), each file fetched once, checked against the manifest's sha256.

Object stores have no `flock`, so a writer holds a lease instead: `staging/<token>.lease` says
until when it is alive, and a thread renews it every third of its term. `gc` (and every new
writer) removes staging, and the unpublished segments its `pending.json` names, only once a lease
has been expired for a whole extra term; a writer whose lease has lapsed (it could not renew)
refuses to claim a version. A `kill -9`ed writer is thus collected after at most two terms
(`$RLSTORE_LEASE_SECONDS`, default 60). Clocks of writers and collectors must agree to well
within a term (NTP does).
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Mapping

from rlstore.confinement import UnsafePathError, confine_child
from rlstore.errors import StoreError
from rlstore.fs import ObjectStore, RemoteError
from rlstore.manifest import writer_identity
from rlstore.shard_targets import RESULT_FILE, BucketShardTarget
from rlstore.store import GarbageReport, Staging, Store, parse_pending, sha256_file, shard_path

CACHE_ENV = "RLSTORE_CACHE"
LEASE_ENV = "RLSTORE_LEASE_SECONDS"
_DEFAULT_CACHE = "~/.cache/rlstore"
_DEFAULT_LEASE_SECONDS = 60.0
_LEASE_SUFFIX = ".lease"
_PENDING = "pending.json"


def cache_root() -> Path:
    """Where remote stores keep staging and read caches on this machine."""
    return Path(os.path.expanduser(os.environ.get(CACHE_ENV) or _DEFAULT_CACHE)).resolve()


def lease_seconds() -> float:
    return float(os.environ.get(LEASE_ENV) or _DEFAULT_LEASE_SECONDS)


class RemoteStore(Store):
    """A `Store` in an object store; make one with `Store("s3://bucket/prefix")`."""

    def __init__(self, root: str | os.PathLike | None = None):
        from rlstore.store import default_root

        self.objects = ObjectStore(str(root or default_root()))
        self.cache = cache_root()
        mirror = self.cache / "stores" / self.objects.scheme / self.objects.bucket
        self.root = (mirror / self.objects.prefix if self.objects.prefix else mirror).resolve()

    @property
    def location(self) -> str:
        return self.objects.url

    def _key(self, path: Path) -> str:
        """The object key of a store path (a path under the local mirror `root`)."""
        return path.relative_to(self.root).as_posix() if path != self.root else ""

    def shown(self, path: Path) -> str:
        return self.objects.url_of(self._key(path))

    # ---- storage steps ------------------------------------------------------------------------

    def read_file(self, path: Path) -> bytes:
        try:
            return self.objects.read(self._key(path))
        except FileNotFoundError:
            raise FileNotFoundError(errno.ENOENT, "no such object", self.shown(path)) from None

    def has_file(self, path: Path) -> bool:
        return self.objects.exists(self._key(path))

    def _list_names(self, directory: Path) -> list[str]:
        return self.objects.list(self._key(directory))

    def _open_staging(self, name: str) -> "RemoteStaging":
        return RemoteStaging(self, name)

    def _place_segment(self, source: Path, target: Path, staging: Staging) -> None:
        """Uploads the segment's local files and copies, inside the bucket, the shards that
        workers uploaded into the staging area to their final names; then keeps the local
        directory as this host's cached view (without the workers' shards, fetched on a read)."""
        assert isinstance(staging, RemoteStaging)
        uploaded = staging.uploaded_shards(source.name)
        for final in uploaded:
            (source / final).unlink()  # the stand-in `name_shard` left for TFDS
        for file in sorted(source.iterdir()):
            self.objects.upload(file, f"{self._key(target)}/{file.name}")
        for final, file in sorted(uploaded.items()):
            self.objects.copy(f"{staging.key}/{source.name}/{file}", f"{self._key(target)}/{final}")
        os.rename(source, target)

    def _return_segment(self, target: Path, source: Path) -> None:
        os.rename(target, source)
        self.objects.remove(self._key(target))

    def _write_once(self, path: Path, raw: bytes, staging: Staging) -> None:
        self.objects.create(self._key(path), raw)  # already there: the same bytes (content-addressed)

    def _claim(self, dataset_dir: Path, number: int, raw: bytes, staging: Staging) -> bool:
        assert isinstance(staging, RemoteStaging)
        staging.check_lease()
        return self.objects.create(self._key(dataset_dir / "versions" / f"{number}.json"), raw)

    def _write_pending(self, staging: Staging, pending: Mapping[str, list] | None) -> None:
        assert isinstance(staging, RemoteStaging)
        key = f"{staging.key}/{_PENDING}"
        if pending is None:
            self.objects.remove(key)
        else:
            self.objects.write(key, json.dumps(pending).encode())

    # ---- reading through the cache ------------------------------------------------------------

    def readable_segment_dir(self, name: str, segment: Mapping[str, Any], fresh: bool = False) -> Path:
        """The segment's local view: each shard and metadata file fetched once into
        `objects/<sha256>` (checked against the manifest) and hard-linked into place; with
        `fresh`, fetched and checked again whatever the cache holds."""
        directory = self.segment_dir(name, segment)
        for entry in [*segment["shards"], *segment["metadata_files"]]:
            target = shard_path(directory, entry)
            if fresh or not target.is_file():
                self._fetch(target, entry, fresh)
        return directory

    def _fetch(self, target: Path, entry: Mapping[str, Any], fresh: bool) -> None:
        sha = entry.get("sha256")
        if not isinstance(sha, str) or len(sha) != 64 or not all(c in "0123456789abcdef" for c in sha):
            raise UnsafePathError(f"{self.shown(target)}: sha256 {sha!r} in the manifest is not a sha256")
        cached = self.cache / "objects" / sha[:2] / sha
        if fresh or not cached.is_file():
            cached.parent.mkdir(parents=True, exist_ok=True)
            temporary = cached.with_name(f".{sha}.{uuid.uuid4().hex}")
            try:
                self.objects.download(self._key(target), temporary)
                if sha256_file(temporary) != sha:
                    raise RemoteError(self.shown(target), "sha256 differs from the manifest")
                os.replace(temporary, cached)
            finally:
                temporary.unlink(missing_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
        try:
            os.link(cached, partial)
        except OSError:  # another file system, no hard links: a copy then
            shutil.copyfile(cached, partial)
        os.replace(partial, target)

    # ---- housekeeping -------------------------------------------------------------------------

    def has_live_writer(self, name: str) -> bool:
        staging = self.dataset_dir(name) / "staging"
        return any(entry.endswith(_LEASE_SUFFIX) and not self._lease_expired(staging / entry, grace=0.0)
                   for entry in self._list_names(staging))

    def collect_garbage(self, name: str | None = None, orphans: bool = False,
                        runs_dir: str | os.PathLike | None = None) -> GarbageReport:
        """Removes staging left by writers whose lease has expired (and, after it, a whole extra
        term), with the uploaded segments and segment lists its `pending.json` names that no
        version refers to; never a live writer's. Orphans (what no version and no staging names)
        are not looked for in object stores yet."""
        report = super().collect_garbage(name, orphans=False)  # this host's local staging
        for dataset in [name] if name else self._dataset_candidates(report.skipped):
            staging = self.dataset_dir(dataset) / "staging"
            entries = self._list_names(staging)
            leases = {entry[: -len(_LEASE_SUFFIX)] for entry in entries if entry.endswith(_LEASE_SUFFIX)}
            for token in sorted(set(entries) | leases):
                if token.endswith(_LEASE_SUFFIX):
                    continue
                try:
                    area = confine_child(staging, token, what="staging entry")
                except UnsafePathError as error:
                    report.skipped.append(f"{self.shown(staging)}: {error.readable()}")
                    continue
                lease = area.with_name(token + _LEASE_SUFFIX)
                if token in leases and not self._lease_expired(lease, grace=lease_seconds()):
                    continue
                self._remove_abandoned_remote(dataset, area, report)
                if token in leases:
                    self.objects.remove(self._key(lease))
        if orphans:
            report.skipped.append(f"{self.location}: orphan segments are not collected in object stores yet")
        return report

    def _lease_expired(self, lease: Path, grace: float) -> bool:
        """Whether the lease ran out more than `grace` seconds ago; unreadable leases count as
        expired once the object itself is older than a term plus the grace."""
        raw = self.objects.read_if_exists(self._key(lease))
        try:
            expires = float(json.loads(raw)["expires"]) if raw is not None else None
        except (ValueError, TypeError, KeyError):
            expires = None
        if expires is None:
            modified = self.objects.modified(self._key(lease))
            expires = (modified or 0.0) + lease_seconds()
        return time.time() > expires + grace

    def _remove_abandoned_remote(self, dataset: str, area: Path, report: GarbageReport) -> None:
        raw = self.objects.read_if_exists(f"{self._key(area)}/{_PENDING}")
        if raw is not None:
            names = parse_pending(raw)
            referenced = self.referenced(dataset)
            segments = self.dataset_dir(dataset) / "segments"
            for segment_id in names["segments"]:
                try:
                    segment = confine_child(segments, segment_id, what=f"{self.shown(area)}/{_PENDING}: segment")
                except UnsafePathError as error:
                    report.skipped.append(error.readable())
                    continue
                if segment_id not in referenced.segments:
                    self.objects.remove(self._key(segment))
                    report.removed.append(self.shown(segment))
            for sha in names["segment_lists"]:
                try:
                    path = self.segment_list_path(dataset, sha)
                except UnsafePathError as error:
                    report.skipped.append(f"{self.shown(area)}/{_PENDING}: {error.readable()}")
                    continue
                if sha not in referenced.segment_lists and self.has_file(path):
                    self.objects.remove(self._key(path))
                    report.removed.append(self.shown(path))
        self.objects.remove(self._key(area))
        report.removed.append(self.shown(area))

    def _unsupported(self, what: str) -> StoreError:
        return StoreError(f"{self.location}: {what} is not supported on object-store roots yet")

    def migrate(self, name: str):
        raise self._unsupported("migrate")

    def prune(self, name: str, *args: Any, **kwargs: Any):
        raise self._unsupported("prune")

    def compact(self, name: str, *args: Any, **kwargs: Any):
        raise self._unsupported("compact")

    def append_log(self, name: str, event: Mapping[str, Any]) -> None:
        raise self._unsupported("a dataset log")


class RemoteStaging(Staging):
    """A local staging directory plus the bucket's lease on `staging/<token>`, renewed by a
    daemon thread until `close`."""

    def __init__(self, store: RemoteStore, name: str):
        super().__init__(store.dataset_dir(name))
        self._store = store
        self.key = store._key(self.path)
        self._lease_key = f"{self.key}{_LEASE_SUFFIX}"
        self._seconds = lease_seconds()
        self._renewed = 0.0
        self._uploaded: dict[str, dict[str, str]] = {}
        self._stop = threading.Event()
        try:
            self._renew()
        except BaseException:
            super().close()
            raise
        self._thread = threading.Thread(target=self._keep_alive, name="rlstore-lease", daemon=True)
        self._thread.start()

    def shard_target(self, segment_dir: Path) -> BucketShardTarget:
        """Workers upload the shards of `segment_dir` into this staging area of the bucket, and
        the pipeline's result next to them (`rlstore.shard_targets`)."""
        self._uploaded[segment_dir.name] = {}
        return BucketShardTarget(self._store.objects.url, f"{self.key}/{segment_dir.name}", f"{self.key}/{RESULT_FILE}")

    def name_shard(self, segment_dir: Path, file: str, final: str) -> None:
        """Shards workers uploaded get their final names when the segment is placed. An empty
        file of the final name stands in for each until then: TFDS's `write_metadata` lists the
        directory for the shard names (`_place_segment` deletes these stand-ins)."""
        if segment_dir.name in self._uploaded:
            self._uploaded[segment_dir.name][final] = file
            (segment_dir / final).touch()
        else:
            super().name_shard(segment_dir, file, final)

    def uploaded_shards(self, segment_id: str) -> dict[str, str]:
        """Final name -> name in the staging area of the segment's shards that workers uploaded."""
        return self._uploaded.get(segment_id, {})

    def _renew(self) -> None:
        now = time.time()
        lease = {"token": self.path.name, "writer": writer_identity(), "renewed": now, "expires": now + self._seconds}
        self._store.objects.write(self._lease_key, json.dumps(lease).encode())
        self._renewed = now

    def _keep_alive(self) -> None:
        while not self._stop.wait(self._seconds / 3):
            try:
                self._renew()
            except StoreError:
                pass  # tried again a third of a term later; `check_lease` refuses once it has lapsed

    def check_lease(self) -> None:
        """Refuses to publish once the lease may have lapsed: `gc` may be removing this staging."""
        if time.time() > self._renewed + self._seconds:
            raise StoreError(f"{self._store.objects.url_of(self._lease_key)}: the writer's lease lapsed "
                             "(it could not be renewed); nothing was published")

    def close(self) -> None:
        self._stop.set()
        if hasattr(self, "_thread"):
            self._thread.join()
        try:
            self._store.objects.remove(self.key)
            self._store.objects.remove(self._lease_key)
        finally:
            super().close()
