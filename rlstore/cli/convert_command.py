"""`rlstore convert NAME[@V] --to minari|d4rl|rlds --out ...`: a thin layer over `rlstore.convert`;
`rlstore convert NAME --to parquet|tfrecord`: over `rlstore.shard_conversion` (a new version in the store)."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from rlstore.errors import StoreError
from rlstore.names import parse_ref
from rlstore.shard_formats import FORMATS as SHARD_FORMATS
from rlstore.store import Store

_EPILOG = """\
examples:
  rlstore --store ./store convert hopper@3 --to d4rl --out hopper.hdf5
  rlstore --store ./store convert hopper --to minari --dataset-id rlstore/hopper-v0 --out ~/.minari/datasets
  rlstore --store ./store convert catch_logs@1 --to rlds --out catch_tfds/
  rlstore --store ./store convert pong --to tfrecord      # a new version of pong, in TFRecord shards

minari: readable by minari.load_dataset('NS/NAME-vN') with MINARI_DATASETS_PATH=DIR.
d4rl:   observations, actions, rewards, next_observations, terminals, timeouts, infos/*, metadata/*.
rlds:   one TFDS directory (tfds.builder_from_directory reads it), the version's episodes byte for byte.
A warning names everything the target format cannot hold. --out must not exist yet.
parquet, tfrecord: no --out; the dataset's latest version is published again as a new version
        with every shard in that container (frames stored once are re-encoded: raw in parquet,
        zlib per frame in TFRecord); earlier versions are untouched. Stock TFDS reads both.
"""


def register(commands) -> None:
    convert = commands.add_parser(
        "convert", help="write a version out as a Minari dataset, a D4RL file or one RLDS directory, or "
                        "publish it again in the other shard format",
        description="Converts one version to another format, reading it without TensorFlow; or publishes the "
                    "latest version again as a new version whose shards are parquet or tfrecord.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    convert.add_argument("ref", metavar="NAME[@V]")
    convert.add_argument("--to", required=True, choices=("minari", "d4rl", "rlds", *SHARD_FORMATS),
                         help="target format; parquet or tfrecord: a new version in the store")
    convert.add_argument("--out", metavar="PATH",
                         help="minari: the datasets root DIR; d4rl: FILE.hdf5; rlds: a new DIR (not with "
                              "parquet or tfrecord)")
    convert.add_argument("--dataset-id", metavar="NS/NAME-vN", help="minari only: the new dataset's id")
    convert.add_argument("--minari-format", choices=("hdf5", "arrow"), default="hdf5",
                         help="minari only: its storage backend (default hdf5)")
    convert.set_defaults(run=_convert)


def _convert(store: Store, args: argparse.Namespace, _: Sequence[str]) -> int:
    if args.to in SHARD_FORMATS:
        return _convert_shards(store, args)
    if args.out is None:
        raise StoreError(f"--to {args.to} needs --out")
    from rlstore.convert import convert

    options = {"dataset_id": args.dataset_id, "data_format": args.minari_format} if args.to == "minari" else {}
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=store.manifest(args.ref).num_episodes, unit="episode", desc="convert", file=sys.stderr)
    try:
        report = convert(store, args.ref, to=args.to, out=args.out, progress=bar.update if bar else None, **options)
    finally:
        if bar is not None:
            bar.close()
    print(f"wrote {report.ref} to {report.out} as {report.format}: {report.episodes} episodes, {report.steps} steps")
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _convert_shards(store: Store, args: argparse.Namespace) -> int:
    from rlstore.shard_conversion import convert_shards

    ref = parse_ref(args.ref)
    if args.out is not None:
        raise StoreError(f"--to {args.to} publishes a new version in the store; it takes no --out")
    latest = store.manifest(ref.name)
    if ref.version is not None and ref.version != latest.version:
        raise StoreError(f"--to {args.to} converts the latest version ({ref.name}@{latest.version}), "
                         f"not {args.ref}: a new version is made from the latest")
    manifest = convert_shards(store, ref.name, args.to)
    print(f"published {ref.name}@{manifest.version}: {ref.name}@{latest.version}'s {manifest.num_episodes} episodes "
          f"in {args.to} shards")
    return 0
