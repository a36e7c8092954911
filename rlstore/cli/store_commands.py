"""Store commands: ingest, list, info, validate, gc."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from rlstore.cli.formatting import table, to_json
from rlstore.errors import StoreError
from rlstore.store import Store


def register(commands) -> None:
    ingest = commands.add_parser(
        "ingest", help="ingest logs into a dataset as a new version",
        description="Runs the Beam ingest pipeline over PATHs and publishes a new version of DATASET "
                    "(the first version, or an append that adds only the new data). Arguments after "
                    "'--' go to Beam's PipelineOptions unchanged, e.g. -- --runner=... ; without a "
                    "runner, the DirectRunner uses every core.")
    ingest.add_argument("--dataset", required=True, help="dataset name: letters, digits, '_' and '-'")
    ingest.add_argument("--format", default="auto",
                        help="source format: auto (default), envlogger, minari, rlds, dqn_replay, d4rl, imitation or npz")
    ingest.add_argument("--max-episode-steps", type=int, metavar="N",
                        help="the environment's time limit: d4rl files without 'timeouts' are cut into episodes of "
                             "at most N steps; imitation episodes of exactly N actions are time-limit cuts, not terminations")
    ingest.add_argument("--frame-stack", type=int, metavar="K",
                        help="observations are stacks of the last K frames (last axis): store each frame once and "
                             "let readers rebuild the stacks; for dqn_replay, Dopamine's stack size (default 4). "
                             "Without it, stacks are detected in the first episode (uint8 [..., K], K of 2 to 16, "
                             "zero-padded at the start, each step the previous shifted by one frame); "
                             "--frame-stack 1 stores observations whole")
    ingest.add_argument("--strict", action="store_true",
                        help="rlds: refuse episodes with no step marked is_last instead of repairing them "
                             "(by default the last step becomes is_last, a truncation, counted in the report)")
    ingest.add_argument("--image-encoding", action="append", default=[], metavar="[FIELD=]ENCODING",
                        help="how raw uint8 image fields ([H, W, C]) are stored: png (the default, lossless), "
                             "jpeg or jpeg:QUALITY (1-100, default 95; lossy, several times smaller) or zlib "
                             "(the raw pixels compressed, lossless). FIELD is a step field such as "
                             "observation/wrist; without FIELD= it applies to every other image field. Repeat "
                             "for several fields, e.g. --image-encoding observation/wrist=jpeg:90 "
                             "--image-encoding observation/depth=zlib. Images the source already encoded "
                             "(PNG/JPEG in RLDS/TFDS datasets) are always kept byte for byte")
    ingest.add_argument("--shard-format", choices=("tfrecord", "parquet"),
                        help="container of the shards: parquet (the default for frame-stacked observations: frames "
                             "stored raw, an episode's frames compressed together with zstd) or tfrecord (the default "
                             "otherwise); an append keeps the dataset's format. Stock TFDS reads both "
                             "(tfds.builder_from_directory(...).as_dataset)")
    ingest.add_argument("--on-error", choices=("fail", "skip"), default="fail",
                        help="fail (default): the first bad episode stops the ingest and nothing is published; "
                             "skip: bad episodes go to rejects.jsonl, kept with the version, and the rest is published")
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
    validate.add_argument("--all", action="store_true",
                          help="check every version of NAME, not only the latest (damage to an old version "
                               "matters to whoever pinned it)")
    validate.add_argument("--quick", action="store_true", help="check hashes and features only, not episodes")
    validate.set_defaults(run=_validate)

    gc = commands.add_parser(
        "gc", help="remove what crashed writers left, orphan segments and stale replay checkpoints",
        description="Removes staging areas of dead writers, segments and segment lists that no version and no "
                    "live writer refers to, and replay checkpoints of versions that no longer exist (unless a "
                    "run manifest under --runs names them). Published versions are never touched.")
    gc.add_argument("dataset", nargs="?", help="only this dataset (default: all)")
    gc.add_argument("--runs", metavar="DIR", help="runs directory whose run manifests may name replay checkpoints")
    gc.set_defaults(run=_gc)


def _ingest(store: Store, args: argparse.Namespace, beam_args: Sequence[str]) -> int:
    from rlstore.pipelines.ingest import ingest

    options = {} if args.max_episode_steps is None else {"max_episode_steps": args.max_episode_steps}
    if args.frame_stack is not None:
        options["frame_stack"] = args.frame_stack
    if args.strict:
        options["strict"] = True
    from rlstore.images import image_encoding_args

    manifest = ingest(store, args.dataset, args.paths, format=args.format, beam_args=beam_args,
                      progress=sys.stderr.isatty(), format_options=options, on_error=args.on_error,
                      image_encodings=image_encoding_args(args.image_encoding), shard_format=args.shard_format)
    print(f"published {manifest.name}@{manifest.version}: {manifest.num_episodes} episodes, "
          f"{manifest.num_steps} steps in {len(manifest.segments)} segment(s)")
    report = manifest.data["report"]
    rejects = f"; {report['rejects']['count']} rejected, listed in {store.location}/{report['rejects']['path']}" \
        if report["rejects"] else ""
    print(f"{len(report['warnings'])} warning(s){rejects}")
    for warning in report["warnings"]:
        print(f"  {warning['kind']}: {warning['message']}")
    return 0


def _list(store: Store, args: argparse.Namespace, _: Sequence[str]) -> int:
    from rlstore.info import listing

    rows, notes = listing(store)
    for note in notes:
        print(f"skipped {note}", file=sys.stderr)
    if args.json:
        print(to_json(rows))
    elif not rows:
        print(f"no datasets in {store.location}")
    else:
        print(table(["name", "latest", "episodes", "steps", "created"],
                    [[r["name"], r["latest"], r["episodes"], r["steps"], r["created"]] for r in rows]))
    return 0


def _info(store: Store, args: argparse.Namespace, _: Sequence[str]) -> int:
    from rlstore.info import describe

    info = describe(store, args.ref)
    if args.json:
        print(to_json(info))
        return 0
    stats = info["stats"]
    print(f"{info['name']}@{info['version']}  (versions: {', '.join(map(str, info['versions']))})")
    print(f"  created   {info['created']} by {info['writer']['user']}@{info['writer']['host']}")
    print(f"  episodes  {info['num_episodes']}    steps {info['num_steps']}    segments {len(info['segments'])}")
    print(f"  shards    {info['shard_format']}")
    print("  splits    " + ", ".join(f"{name} {n['num_episodes']} episodes ({n['num_steps']} steps)"
                                    for name, n in info["splits"].items()))
    for label, key in (("return", "episode_return"), ("length", "episode_length")):
        s = stats[key]
        print(f"  {label:<9} mean {s['mean']:.4g}  std {s['std']:.4g}  min {s['min']:.4g}  max {s['max']:.4g}")
    print("  features")
    print(table(["field", "type"], [[k, v] for k, v in info["features"].items()], indent=4))
    from rlstore.cli.report_command import report_lines

    print("\n".join(report_lines(info["report"])))
    lineage = info["lineage"]
    print(f"  lineage   {lineage.get('pipeline', '?')} ({lineage.get('format', '')}), "
          f"parent version {lineage.get('parent_version')}, {len(info['sources'])} source file(s)")
    return 0


def _validate(store: Store, args: argparse.Namespace, _: Sequence[str]) -> int:
    from rlstore.names import DatasetRef, parse_ref
    from rlstore.validation import validate

    if args.all:
        ref = parse_ref(args.ref)
        if ref.version is not None:
            raise StoreError(f"--all checks every version of a dataset: give NAME, not {args.ref}")
        store.resolve(ref.name)  # a readable error if there is no such dataset
        refs = [DatasetRef(ref.name, version) for version in store.versions(ref.name)]
    else:
        refs = [store.resolve(args.ref)]
    failed = 0
    reported: set[str] = set()  # a damaged file is one finding, even if several versions lead to it
    for ref in refs:
        problems = validate(store, ref, check_episodes=not args.quick)
        for problem in problems:
            if problem.file not in reported:
                print(f"error: {problem}", file=sys.stderr)
            reported.add(problem.file)
        if problems:
            failed += 1
            continue
        manifest = store.manifest(ref)
        print(f"{ref}: ok ({len(manifest.segments)} segment(s), {manifest.num_episodes} episodes checked)")
    return 1 if failed else 0


def _gc(store: Store, args: argparse.Namespace, _: Sequence[str]) -> int:
    report = store.collect_garbage(args.dataset, orphans=True, runs_dir=args.runs)
    for path in report.removed:
        print(f"removed {path}")
    for note in report.skipped:
        print(f"skipped {note}")
    print(f"{len(report.removed)} path(s) removed")
    return 0
