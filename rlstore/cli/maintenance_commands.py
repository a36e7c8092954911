"""Maintenance commands for long-lived datasets: compact, prune, migrate."""
from __future__ import annotations

import argparse
import re
import sys
from typing import Sequence

from rlstore.compaction import DEFAULT_TARGET_BYTES
from rlstore.store import Store

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def byte_size(text: str) -> int:
    """`256M`, `1G`, `64K` or a plain number of bytes."""
    match = re.fullmatch(r"([0-9]+)([KMG]?)B?", text.strip().upper())
    if not match or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: use a number of bytes, or e.g. 64M, 1G")
    return int(match.group(1)) * _UNITS[match.group(2)]


def register(commands) -> None:
    compact = commands.add_parser(
        "compact", help="publish a new version with the same episodes in fewer, larger segments",
        description="Packs consecutive segments of the latest version smaller than the target into new "
                    "segments of up to --target-size bytes of shards (episodes are copied as they are "
                    "stored, after their sha256 is checked) and publishes the result as a new version whose "
                    "lineage names the version it was compacted from. Older versions are not changed; "
                    "'rlstore prune' deletes them.")
    compact.add_argument("dataset", metavar="NAME")
    compact.add_argument("--target-size", type=byte_size, default=DEFAULT_TARGET_BYTES, metavar="SIZE",
                         help=f"largest compacted segment, e.g. 64M or 1G (default {DEFAULT_TARGET_BYTES >> 20}M)")
    compact.set_defaults(run=_compact)

    prune = commands.add_parser(
        "prune", help="delete old versions and the segments only they use",
        description="Deletes the versions that every given rule selects (--keep-last N: all but the newest N; "
                    "--before V: every version below V), never the latest, then the segments and segment lists "
                    "that only those versions referred to. A version named by a run manifest (run.json) under "
                    "--runs DIR is kept unless --force. What is deleted is written to the dataset's log.jsonl.")
    prune.add_argument("dataset", metavar="NAME")
    prune.add_argument("--keep-last", type=int, metavar="N", help="keep the newest N versions")
    prune.add_argument("--before", type=int, metavar="V", help="delete versions below V")
    prune.add_argument("--runs", metavar="DIR", help="runs directory: versions its run manifests use are kept")
    prune.add_argument("--force", action="store_true", help="delete versions that runs pin, too")
    prune.set_defaults(run=_prune)

    migrate = commands.add_parser(
        "migrate", help="rewrite a dataset's old (format 1) versions in the current format",
        description="Rewrites every version written in manifest format 1 (each version listing the whole "
                    "history's segments) as format 2 (sealed version files over shared segment lists), "
                    "keeping segments, counts, schema and lineage. Stop writers first. Running it again "
                    "finishes an interrupted migration; a dataset already in format 2 is left alone.")
    migrate.add_argument("datasets", nargs="*", metavar="NAME", help="datasets to migrate (default: all)")
    migrate.set_defaults(run=_migrate)


def _compact(store: Store, args: argparse.Namespace, _: Sequence[str]) -> int:
    source = store.manifest(args.dataset)
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=source.num_segments, unit="segment", desc="compact", dynamic_ncols=True)
    try:
        manifest = store.compact(args.dataset, args.target_size, progress=bar.update if bar else None)
    finally:
        if bar:
            bar.close()
    if manifest is None:
        print(f"{source.name}@{source.version}: nothing to compact ({source.num_segments} segment(s); "
              f"no two consecutive ones fit in {args.target_size:,} bytes)")
        return 0
    origin = manifest.lineage["compacted_from"]
    print(f"published {manifest.name}@{manifest.version}: {manifest.num_episodes} episodes in "
          f"{manifest.num_segments} segment(s), compacted from {manifest.name}@{origin['version']} "
          f"({origin['segments']} segments packed into {origin['into']})")
    return 0


def _prune(store: Store, args: argparse.Namespace, _: Sequence[str]) -> int:
    report = store.prune(args.dataset, keep_last=args.keep_last, before=args.before, runs_dir=args.runs,
                         force=args.force)
    for version, runs in sorted(report.pinned.items()):
        print(f"kept {report.name}@{version}: pinned by {', '.join(runs)} (--force deletes it)")
    if not report.deleted_versions:
        print(f"{report.name}: nothing to prune")
        return 0
    versions = report.deleted_versions
    print(f"deleted {len(versions)} version(s) of {report.name} ({versions[0]}..{versions[-1]}), "
          f"{len(report.deleted_segments)} segment(s) and {report.deleted_segment_lists} segment list(s): "
          f"{report.bytes_freed:,} bytes; logged in {store.log_path(report.name)}")
    return 0


def _migrate(store: Store, args: argparse.Namespace, _: Sequence[str]) -> int:
    for name in args.datasets or store.datasets():
        report = store.migrate(name)
        if report.migrated:
            print(f"{name}: migrated versions {report.migrated[0]}..{report.migrated[-1]}; metadata "
                  f"{report.bytes_before:,} -> {report.bytes_after:,} bytes")
        else:
            print(f"{name}: already in the current format")
    return 0
