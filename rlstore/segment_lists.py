"""Segment lists: immutable, content-addressed files of segment records that versions share.

    <dataset>/segment-lists/<sha256>.json   {"format": "rlstore.segment-list/1", "segments": [...]}

A format-2 version names its lists in order (`segment_lists`: sha256, segment count, level); its
segments are their concatenation. A commit keeps its parent's lists, adds one level-0 list with
the segments it adds, and whenever the last FANOUT lists share a level below TOP_LEVEL, merges
them into one list of the next level. So a record is rewritten at most TOP_LEVEL times, a
version names at most (FANOUT - 1) * TOP_LEVEL lists plus one per FANOUT**TOP_LEVEL commits, and
a commit's metadata stays a few kilobytes however long the history. This is Apache Iceberg's
manifest list with its merging of small manifests; Delta Lake's checkpoints would instead
rewrite the whole state every 10 commits, which grows with the dataset.

A list's file name is the sha256 of its bytes, so a version's reference pins it, identical lists
are shared for free, and writing one is idempotent (on an object store too).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from rlstore.manifest import DamagedManifestError, canonical_json

LIST_FORMAT = "rlstore.segment-list/1"
DIRECTORY = "segment-lists"
FANOUT = 10
TOP_LEVEL = 3

Record = Mapping[str, Any]
Reference = Mapping[str, Any]


def file_name(sha256: str) -> str:
    return f"{sha256}.json"


def encode(records: Sequence[Record]) -> tuple[str, bytes]:
    """(sha256, bytes) of the list file holding `records`."""
    raw = canonical_json({"format": LIST_FORMAT, "segments": list(records)})
    return hashlib.sha256(raw).hexdigest(), raw


def decode(path: str, raw: bytes, reference: Reference) -> list[Record]:
    """The records of a list file, checked against the version's reference to it."""
    if hashlib.sha256(raw).hexdigest() != reference.get("sha256"):
        raise DamagedManifestError(path, "segment list's sha256 differs from the version's reference")
    try:
        records = json.loads(raw)["segments"]
    except (ValueError, KeyError, TypeError) as error:
        raise DamagedManifestError(path, f"not a segment list ({error})") from None
    if len(records) != reference.get("segments"):
        raise DamagedManifestError(path, f"holds {len(records)} segments, the version says {reference.get('segments')}")
    return records


@dataclass
class Plan:
    """The lists of a new version, and the list files it needs that do not exist yet."""

    references: list[dict[str, Any]]
    new_files: dict[str, bytes] = field(default_factory=dict)


def plan(
    parent: Sequence[Reference],
    added: Sequence[Record],
    removed: Iterable[str],
    read: Callable[[Reference], Sequence[Record]],
    seed: Sequence[Record] = (),
) -> Plan:
    """The lists of a version = `parent`'s lists, without the `removed` segment ids, plus `added`.

    `read` loads an existing list. `seed` (a format-1 parent's full segment list) becomes one
    top-level list first. Lists that lose segments are rewritten at their level; lists that do
    not change are reused as they are.
    """
    result = Plan([])
    fresh: dict[str, list[Record]] = {}

    def make(records: Sequence[Record], level: int) -> dict[str, Any]:
        sha, raw = encode(records)
        result.new_files[sha] = raw
        fresh[sha] = list(records)
        return {"sha256": sha, "segments": len(records), "level": level}

    def load(reference: Reference) -> Sequence[Record]:
        return fresh.get(reference["sha256"]) or read(reference)

    references = [make(seed, TOP_LEVEL)] if seed else [dict(r) for r in parent]
    removed = set(removed)
    if removed:
        kept_references = []
        for reference in references:
            records = load(reference)
            kept = [r for r in records if r["id"] not in removed]
            if len(kept) == len(records):
                kept_references.append(reference)
            elif kept:
                kept_references.append(make(kept, reference["level"]))
        references = kept_references
    if added:
        references.append(make(added, 0))
    while len(references) >= FANOUT and (level := references[-1]["level"]) < TOP_LEVEL \
            and all(r["level"] == level for r in references[-FANOUT:]):
        merged = [record for reference in references[-FANOUT:] for record in load(reference)]
        references[-FANOUT:] = [make(merged, level + 1)]
    used = {r["sha256"] for r in references}
    result.new_files = {sha: raw for sha, raw in result.new_files.items() if sha in used}
    result.references = references
    return result
