"""What a version holds, as one JSON-able dict (behind `rlstore info` and `rlstore list`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from rlstore.confinement import ConfinedEntries
from rlstore.errors import StoreError
from rlstore.manifest import Manifest
from rlstore.names import DatasetRef
from rlstore.shard_formats import TFRECORD, segment_format
from rlstore.store import Store


def describe(store: Store, ref: str | DatasetRef) -> dict[str, Any]:
    manifest = store.manifest(ref)
    lineage = dict(manifest.lineage)
    return {
        "name": manifest.name,
        "version": manifest.version,
        "versions": store.versions(manifest.name),
        "created": manifest.data["created"],
        "num_episodes": manifest.num_episodes,
        "num_steps": manifest.num_steps,
        "splits": splits(manifest.segments),
        "segments": [store.shown(p) for p in _segment_dirs(store, manifest)],  # URLs in a bucket
        "shard_format": segment_format(manifest.segments[0]) if manifest.segments else TFRECORD,
        "sources": lineage.get("sources", []),
        "features": manifest.schema.describe(),
        "stats": manifest.stats.summary(),
        "report": manifest.data.get("report"),  # the ingest's quality report of the data this version added
        "lineage": lineage,
        "writer": manifest.data["writer"],
        "rlstore_version": manifest.data["rlstore_version"],
    }


def _segment_dirs(store: Store, manifest: Manifest) -> list[Path]:
    """The version's segment directories, each confined to `segments/` as `Store.segment_dir`
    does, with `segments/` resolved once: at 10,000 segments, resolving every path in full made
    most of `info`'s time."""
    entries = ConfinedEntries(store.dataset_dir(manifest.name), "segments")
    return [entries.path(segment.get("path"), what="segment path") for segment in manifest.segments]


def splits(segments) -> dict[str, dict[str, int]]:
    """Episodes and steps of each TFDS split (train first), summed over the segments' shards."""
    from rlstore.segment import SPLIT, split_names

    shards = [shard for segment in segments for shard in segment["shards"]]
    return {name: {key: sum(shard[key] for shard in shards if shard.get("split", SPLIT) == name)
                   for key in ("num_episodes", "num_steps")} for name in split_names(shards)}


def listing(store: Store) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per dataset (its latest version and size), and a note for every entry of the
    root that is skipped: not a dataset, or a dataset whose latest manifest cannot be read
    (one damaged dataset must not hide the others)."""
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for name in store.datasets(notes):
        try:
            manifest = store.manifest(name)
        except StoreError as error:
            notes.append(f"{name}: {error.readable()} (see `rlstore validate {name}`)")
            continue
        rows.append({"name": name, "latest": manifest.version, "episodes": manifest.num_episodes,
                     "steps": manifest.num_steps, "created": manifest.data["created"]})
    return rows, notes
