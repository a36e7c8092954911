"""`rlstore convert NAME[@V] --to minari|d4rl|rlds --out ...`: a thin layer over `rlstore.convert`."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from rlstore.store import Store

_EPILOG = """\
examples:
  rlstore --store ./store convert hopper@3 --to d4rl --out hopper.hdf5
  rlstore --store ./store convert hopper --to minari --dataset-id rlstore/hopper-v0 --out ~/.minari/datasets
  rlstore --store ./store convert catch_logs@1 --to rlds --out catch_tfds/

minari: readable by minari.load_dataset('NS/NAME-vN') with MINARI_DATASETS_PATH=DIR.
d4rl:   observations, actions, rewards, next_observations, terminals, timeouts, infos/*, metadata/*.
rlds:   one TFDS directory (tfds.builder_from_directory reads it), the version's episodes byte for byte.
A warning names everything the target format cannot hold. --out must not exist yet.
"""


def register(commands) -> None:
    convert = commands.add_parser(
        "convert", help="write a version out as a Minari dataset, a D4RL file or one RLDS directory",
        description="Converts one version to another format, reading it without TensorFlow.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    convert.add_argument("ref", metavar="NAME[@V]")
    convert.add_argument("--to", required=True, choices=("minari", "d4rl", "rlds"), help="target format")
    convert.add_argument("--out", required=True, metavar="PATH",
                         help="minari: the datasets root DIR; d4rl: FILE.hdf5; rlds: a new DIR")
    convert.add_argument("--dataset-id", metavar="NS/NAME-vN", help="minari only: the new dataset's id")
    convert.add_argument("--minari-format", choices=("hdf5", "arrow"), default="hdf5",
                         help="minari only: its storage backend (default hdf5)")
    convert.set_defaults(run=_convert)


def _convert(store: Store, args: argparse.Namespace, _: Sequence[str]) -> int:
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
