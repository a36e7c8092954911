"""The `rlstore` command line: a thin layer over the Python API.

Every subcommand maps to one function of the package; errors meant for the user print as one
line (`error: ...`) with exit status 1, never as a traceback.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any, Callable, Sequence

import rlstore.quiet  # noqa: F401  (before anything imports TF)
from rlstore.errors import RlstoreError
from rlstore.store import DEFAULT_ROOT, ROOT_ENV, Store

_EPILOG = """\
examples:
  rlstore --store ./store ingest --dataset catch_logs --format rlds path/to/an/rlds_dir
  rlstore --store ./store ingest --dataset catch_logs 'logs/*.npz'      # appends a new version
  rlstore --store ./store ingest --dataset big logs/ -- --runner=DirectRunner --direct_num_workers=1
  rlstore --store ./store list
  rlstore --store ./store info catch_logs --json
  rlstore --store ./store info catch_logs@1
  rlstore --store ./store validate catch_logs
  rlstore demo --out demo_run                                      # the main job, end to end

A dataset reference is NAME (the latest version) or NAME@N (version N, the same bytes forever).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlstore",
        description="A versioned store of RLDS datasets: ingest logs with Apache Beam, inspect and validate versions.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--store", default=None,
                        help=f"store root directory (default: ${ROOT_ENV} if set, else {DEFAULT_ROOT})")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = commands.add_parser(
        "ingest", help="ingest logs into a dataset as a new version",
        description="Runs the Beam ingest pipeline over PATHs and publishes a new version of DATASET "
                    "(the first version, or an append that adds only the new data). Arguments after "
                    "'--' go to Beam's PipelineOptions unchanged, e.g. -- --runner=... ; without a "
                    "runner, the DirectRunner uses every core.")
    ingest.add_argument("--dataset", required=True, help="dataset name: letters, digits, '_' and '-'")
    ingest.add_argument("--format", default="auto", help="source format: auto (default), npz or rlds")
    ingest.add_argument("paths", nargs="+", metavar="PATH", help="files, directories or quoted globs ('logs/*.npz')")
    ingest.set_defaults(run=_ingest)

    listing = commands.add_parser("list", help="list datasets with their latest version")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(run=_list)

    info = commands.add_parser("info", help="show a version: counts, features, statistics, lineage")
    info.add_argument("ref", metavar="NAME[@V]")
    info.add_argument("--json", action="store_true", help="print the full description as JSON")
    info.set_defaults(run=_info)

    validate = commands.add_parser(
        "validate", help="re-hash every file of a version and check every episode",
        description="Checks every shard's sha256 against the manifest, the TFDS features against the "
                    "schema, and every episode against the schema and RLDS rules. Exits 1 on failure.")
    validate.add_argument("ref", metavar="NAME[@V]")
    validate.add_argument("--quick", action="store_true", help="check hashes and features only, not episodes")
    validate.set_defaults(run=_validate)

    gc = commands.add_parser("gc", help="remove what crashed writers left in staging")
    gc.add_argument("dataset", nargs="?", help="only this dataset (default: all)")
    gc.set_defaults(run=_gc)

    demo = commands.add_parser(
        "demo", help="run the main job on the built-in default",
        description="Records expert demonstrations of a built-in task as npz logs, ingests them with the "
                    "Beam pipeline into a store under OUT, and prints the dataset's info.")
    demo.add_argument("--out", default="demo_run", help="output directory (default: demo_run)")
    demo.add_argument("--env", default="catch", help="environment spec (default: catch)")
    demo.add_argument("--episodes", type=int, default=100, help="demonstration episodes to record (default: 100)")
    demo.set_defaults(run=_demo)
    return parser


def _ingest(store: Store, args: argparse.Namespace, beam_args: Sequence[str]) -> int:
    from pipelines.ingest import ingest

    manifest = ingest(store, args.dataset, args.paths, format=args.format, beam_args=beam_args,
                      progress=sys.stderr.isatty())
    print(f"published {manifest.name}@{manifest.version}: {manifest.num_episodes} episodes, "
          f"{manifest.num_steps} steps in {len(manifest.segments)} segment(s)")
    return 0


def _list(store: Store, args: argparse.Namespace, _: Sequence[str]) -> int:
    from rlstore.info import listing

    rows = listing(store)
    if args.json:
        print(json.dumps(rows, indent=1))
    elif not rows:
        print(f"no datasets in {store.root}")
    else:
        print(_table(["name", "latest", "episodes", "steps", "created"],
                     [[r["name"], r["latest"], r["episodes"], r["steps"], r["created"]] for r in rows]))
    return 0


def _info(store: Store, args: argparse.Namespace, _: Sequence[str]) -> int:
    from rlstore.info import describe

    info = describe(store, args.ref)
    if args.json:
        print(json.dumps(info, indent=1, default=_json_number))
        return 0
    stats = info["stats"]
    print(f"{info['name']}@{info['version']}  (versions: {', '.join(map(str, info['versions']))})")
    print(f"  created   {info['created']} by {info['writer']['user']}@{info['writer']['host']}")
    print(f"  episodes  {info['num_episodes']}    steps {info['num_steps']}    segments {len(info['segments'])}")
    for label, key in (("return", "episode_return"), ("length", "episode_length")):
        s = stats[key]
        print(f"  {label:<9} mean {s['mean']:.4g}  std {s['std']:.4g}  min {s['min']:.4g}  max {s['max']:.4g}")
    print("  features")
    print(_table(["field", "type"], [[k, v] for k, v in info["features"].items()], indent=4))
    lineage = info["lineage"]
    print(f"  lineage   {lineage.get('pipeline', '?')} ({lineage.get('format', '')}), "
          f"parent version {lineage.get('parent_version')}, {len(info['sources'])} source file(s)")
    return 0


def _validate(store: Store, args: argparse.Namespace, _: Sequence[str]) -> int:
    from rlstore.validation import validate

    ref = store.resolve(args.ref)
    problems = validate(store, ref, check_episodes=not args.quick)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        return 1
    manifest = store.manifest(ref)
    print(f"{ref}: ok ({len(manifest.segments)} segment(s), {manifest.num_episodes} episodes checked)")
    return 0


def _gc(store: Store, args: argparse.Namespace, _: Sequence[str]) -> int:
    removed = store.collect_garbage(args.dataset)
    for path in removed:
        print(f"removed {path}")
    print(f"{len(removed)} path(s) removed")
    return 0


def _demo(store: Store, args: argparse.Namespace, beam_args: Sequence[str]) -> int:
    from rlstore.demo import run_main_job

    run_main_job(args.out, env_spec=args.env, episodes=args.episodes, beam_args=beam_args)
    return 0


def _table(header: list[str], rows: list[list[Any]], indent: int = 0) -> str:
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(" " * indent + line for line in lines)


def _json_number(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    beam_args: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, beam_args = argv[:split], argv[split + 1:]
    args = build_parser().parse_args(argv)
    store = Store(args.store)
    try:
        return args.run(store, args, beam_args)
    except RlstoreError as error:
        print(f"error: {error.readable()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def entry_point() -> None:
    """Console-script entry: exits without running TF's noisy interpreter-shutdown hooks."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
