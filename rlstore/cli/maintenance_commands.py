"""Maintenance commands for long-lived datasets: compact, migrate."""
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


def _migrate(store: Store, args: argparse.Namespace, _: Sequence[str]) -> int:
    for name in args.datasets or store.datasets():
        report = store.migrate(name)
        if report.migrated:
            print(f"{name}: migrated versions {report.migrated[0]}..{report.migrated[-1]}; metadata "
                  f"{report.bytes_before:,} -> {report.bytes_after:,} bytes")
        else:
            print(f"{name}: already in the current format")
    return 0
