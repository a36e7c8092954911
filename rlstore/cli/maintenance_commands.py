"""Maintenance commands for long-lived datasets: migrate (and, with them, compact and prune)."""
from __future__ import annotations

import argparse
from typing import Sequence

from rlstore.store import Store


def register(commands) -> None:
    migrate = commands.add_parser(
        "migrate", help="rewrite a dataset's old (format 1) versions in the current format",
        description="Rewrites every version written in manifest format 1 (each version listing the whole "
                    "history's segments) as format 2 (sealed version files over shared segment lists), "
                    "keeping segments, counts, schema and lineage. Stop writers first. Running it again "
                    "finishes an interrupted migration; a dataset already in format 2 is left alone.")
    migrate.add_argument("datasets", nargs="*", metavar="NAME", help="datasets to migrate (default: all)")
    migrate.set_defaults(run=_migrate)


def _migrate(store: Store, args: argparse.Namespace, _: Sequence[str]) -> int:
    for name in args.datasets or store.datasets():
        report = store.migrate(name)
        if report.migrated:
            print(f"{name}: migrated versions {report.migrated[0]}..{report.migrated[-1]}; metadata "
                  f"{report.bytes_before:,} -> {report.bytes_after:,} bytes")
        else:
            print(f"{name}: already in the current format")
    return 0
