"""`rlstore migrate`: rewrites a dataset's format-1 versions as format 2.

Format 1 repeats every segment record of the history in every version, so its metadata grows
with the square of the number of commits. Migration rebuilds each version, oldest first, as a
sealed format-2 file over shared segment lists: the same segments, counts, schema, statistics,
lineage and report, plus `migrated_from` (the old format and the sha256 of the old file, which
is what run manifests written before the migration recorded). Every version after the first
format-1 one is rewritten, so the chain of parent hashes runs through the new files.

Each file is replaced with a rename, so a reader sees either the old or the new file of a
version, both describing the same data; an interrupted migration is finished by running it
again. Writers must be stopped first: migration refuses to run while a writer is live.
"""
from __future__ import annotations

from dataclasses import dataclass

from rlstore import segment_lists
from rlstore.errors import StoreError
from rlstore.manifest import FORMAT_1, MANIFEST_FORMAT, Manifest, seal
from rlstore.store import Store, write_once, write_pending

_DERIVED = ("format", "parent", "added", "removed", "segment_lists", "num_segments", "checksum", "segments")


@dataclass
class MigrationReport:
    """Versions rewritten, and the metadata bytes before and after."""

    name: str
    migrated: list[int]
    bytes_before: int
    bytes_after: int


def migrate(store: Store, name: str) -> MigrationReport:
    """Rewrites every version of `name` from its first format-1 version on as format 2."""
    versions = store.versions(name)
    if not versions:
        store.resolve(name)  # raises the usual "no dataset named ..." error
    if store.has_live_writer(name):
        raise StoreError(f"{name} has a live writer (a locked staging area in {store.dataset_dir(name) / 'staging'}): "
                         "stop writers before migrating")
    manifests = [store.read_version(name, v) for v in versions]
    first = next((i for i, m in enumerate(manifests) if m.format == FORMAT_1), None)
    before = _metadata_bytes(store, name)
    if first is None:
        return MigrationReport(name, [], before, before)
    lists_dir = store.dataset_dir(name) / segment_lists.DIRECTORY
    lists_dir.mkdir(exist_ok=True)
    parent: Manifest | None = manifests[first - 1] if first else None
    written: list[str] = []
    with store.staging(name) as staging:
        for manifest in manifests[first:]:
            segments = manifest.segments
            previous = {s["id"] for s in parent.segments} if parent else set()
            current = {s["id"] for s in segments}
            added = [s for s in segments if s["id"] not in previous]
            removed = [s["id"] for s in (parent.segments if parent else []) if s["id"] not in current]
            if parent is None or parent.format == MANIFEST_FORMAT:
                base = parent.data["segment_lists"] if parent else []
                plan = segment_lists.plan(base, added, removed, lambda ref: store._read_list(name, ref))
            else:
                plan = segment_lists.plan([], added, removed, lambda ref: store._read_list(name, ref),
                                          seed=parent.segments)
            written += list(plan.new_files)
            write_pending(staging, {"segments": [], "segment_lists": written})  # gc must not take them
            for sha, raw in plan.new_files.items():
                write_once(lists_dir / segment_lists.file_name(sha), raw, staging)
            document = {key: value for key, value in manifest.data.items() if key not in _DERIVED}
            document.update(
                format=MANIFEST_FORMAT,
                parent={"version": parent.version, "sha256": parent.file_sha256} if parent else None,
                added=[s["id"] for s in added], removed=removed, segment_lists=plan.references,
                num_segments=len(segments),
                migrated_from={"format": manifest.format, "sha256": manifest.file_sha256},
            )
            temporary = staging.path / f"migrated-{manifest.version}.json"
            temporary.write_bytes(seal(document))
            temporary.replace(store.version_path(name, manifest.version))
            parent = store.read_version(name, manifest.version)
    return MigrationReport(name, [m.version for m in manifests[first:]], before, _metadata_bytes(store, name))


def _metadata_bytes(store: Store, name: str) -> int:
    directory = store.dataset_dir(name)
    return sum(p.stat().st_size for sub in ("versions", segment_lists.DIRECTORY) if (directory / sub).is_dir()
               for p in (directory / sub).iterdir() if p.is_file())
