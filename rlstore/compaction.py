"""Compaction: a new version holding the same episodes in fewer, larger segments.

Online runs commit a small segment every few episodes, and a version of thousands of small
segments is slow to validate and to read (one TFDS directory and one file open per segment).
`compact` packs runs of consecutive small segments, in order, into segments of up to
`target_bytes` of shards (default `DEFAULT_TARGET_BYTES`, the shard size of ingest and
write-back), copying the encoded episodes record by record: no decoding, and every source
shard's sha256 is checked before its bytes are reused. The result is published as a new
version that removes the packed segments and adds the new ones; its lineage names the version
it was compacted from. Older versions, and their segments, are untouched (`prune` deletes
them when asked to).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

from rlstore.errors import StoreError
from rlstore.manifest import Manifest
from rlstore.publishing import SegmentBuilder
from rlstore.segment import SHARD_BYTES
from rlstore.stats import EpisodeStats
from rlstore.shard_formats import read_bytes_records, segment_format
from rlstore.store import Store, shard_path

DEFAULT_TARGET_BYTES = SHARD_BYTES
PIPELINE_NAME = "rlstore.compact"

Segment = Mapping[str, Any]


@dataclass(frozen=True)
class CompactionPlan:
    """Groups of consecutive segments to merge, each into one new segment."""

    groups: list[list[Segment]]

    @property
    def num_segments(self) -> int:
        return sum(len(group) for group in self.groups)


def segment_bytes(segment: Segment) -> int:
    return sum(shard["bytes"] for shard in segment["shards"])


def plan_compaction(segments: Sequence[Segment], target_bytes: int = DEFAULT_TARGET_BYTES) -> CompactionPlan:
    """Packs consecutive segments smaller than the target, greedily and in order, into groups
    of at most `target_bytes`; a group of one is left as it is, and so is a segment holding
    splits other than train (an RLDS source's val), which packing into train would merge."""
    groups, current, size = [], [], 0
    for segment in segments:
        nbytes = segment_bytes(segment)
        has_splits = any("split" in shard for shard in segment["shards"])
        if current and (size + nbytes > target_bytes or has_splits):
            groups.append(current)
            current, size = [], 0
        if nbytes >= target_bytes or has_splits:
            continue
        current.append(segment)
        size += nbytes
    groups.append(current)
    return CompactionPlan([group for group in groups if len(group) > 1])


def compact(
    store: Store,
    name: str,
    target_bytes: int = DEFAULT_TARGET_BYTES,
    progress: Callable[[int], None] | None = None,
) -> Manifest | None:
    """Publishes the latest version of `name` again in fewer segments; None if no two
    consecutive segments fit together under `target_bytes`. `progress(n)` is called as each
    source segment is copied."""
    if target_bytes <= 0:
        raise StoreError(f"compaction target must be a positive number of bytes, not {target_bytes}")
    source = store.manifest(name)
    plan = plan_compaction(source.segments, target_bytes)
    if not plan.groups:
        return None
    schema = source.schema
    with store.staging(name) as staging:
        records = []
        for group in plan.groups:
            lineage = {"pipeline": PIPELINE_NAME, "compacted_from": [segment["id"] for segment in group]}
            built = SegmentBuilder(store, name, staging, schema, max_shard_bytes=target_bytes,
                                   shard_format=segment_format(group[0]))
            for segment in group:
                _copy_segment(store, name, segment, built)
                if progress:
                    progress(1)
            records.append(built.finish(lineage))
        lineage = {"pipeline": PIPELINE_NAME, "options": {"target_bytes": target_bytes},
                   "compacted_from": {"version": source.version, "segments": plan.num_segments,
                                      "into": len(records)}}
        removed = [segment["id"] for group in plan.groups for segment in group]
        return store.publish(name, staging, records, schema, lineage, removed=removed)


def _copy_segment(store: Store, name: str, segment: Segment, writer: SegmentBuilder) -> None:
    episodes = [record for _, records in segment_records(store, name, segment) for record in records]
    writer.copy(episodes, segment["num_steps"], EpisodeStats.from_json(segment["stats"]))


def segment_records(store: Store, name: str, segment: Segment) -> Iterator[tuple[Mapping[str, Any], list[bytes]]]:
    """Each shard record of a stored segment with its encoded episodes, in order, after checking
    the shard's sha256 and episode count against the manifest (damaged data is never copied)."""
    directory = store.segment_dir(name, segment)
    for shard in segment["shards"]:
        path = shard_path(directory, shard)
        try:
            raw = path.read_bytes()
        except OSError as error:
            raise StoreError(f"{path}: cannot read shard: {error.strerror}") from None
        if hashlib.sha256(raw).hexdigest() != shard["sha256"]:
            raise StoreError(f"{path}: sha256 differs from the manifest; run 'rlstore validate {name}' "
                             "(damaged data is never copied)")
        try:
            records = read_bytes_records(raw, str(path))
        except ValueError as error:
            raise StoreError(str(error)) from None
        if len(records) != shard["num_episodes"]:
            raise StoreError(f"{path}: holds {len(records)} episodes, the manifest says {shard['num_episodes']}")
        yield shard, records
