"""The `rlstore` command line: a thin layer over the Python API.

Each module in COMMAND_MODULES adds its subcommands with `register(commands)`; a subcommand's
handler has the signature `run(store, args, beam_args) -> exit status`. Errors meant for the
user print as one line (`error: ...`) with exit status 1, never as a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from rlstore.child_env import exit_now
from rlstore.errors import RlstoreError
from rlstore.quiet import silence
from rlstore.store import DEFAULT_ROOT, ROOT_ENV, Store

COMMAND_MODULES = ("rlstore.cli.store_commands", "rlstore.cli.maintenance_commands", "rlstore.cli.report_command", "rlstore.cli.demo_command",
                   "rlstore.cli.agent_commands", "rlstore.cli.record_command",
                   "rlstore.cli.serve_command", "rlstore.cli.run_command", "rlstore.cli.convert_command",
                   "rlstore.cli.view_command")

_EPILOG = """\
examples:
  rlstore --store ./store ingest --dataset catch_logs --format rlds path/to/an/rlds_dir
  rlstore --store ./store ingest --dataset catch_logs 'logs/*.npz'      # appends a new version
  rlstore --store ./store ingest --dataset hopper --on-error=skip data/*.hdf5
  rlstore --store ./store ingest --dataset big logs/ -- --direct_num_workers=1
  rlstore --store ./store list
  rlstore --store ./store info catch_logs --json
  rlstore --store ./store validate catch_logs@1
  rlstore --store ./store report catch_logs --out report.png
  rlstore --store ./store train bc --dataset catch_logs --steps 5000 --out runs/bc
  rlstore eval --checkpoint runs/bc --env catch --episodes 20 --json
  rlstore --store ./store run dqfd --env catch --demos catch_logs@1 --env-steps 20000 --out runs/dqfd \
          --demo-ratio 0.25 --write-back catch_online               # online, demonstrations mixed in
  rlstore --store ./store record --env catch --policy expert --episodes 100 --dataset catch_online
  rlstore --store ./store serve catch_logs --port 8000 --expose --tables transitions,sequences   # see README, Security
  rlstore --store ./store convert catch_logs@1 --to d4rl --out catch.hdf5   # also minari, rlds
  rlstore --store ./store view --port 8800                    # look at it in a browser
  rlstore demo --out demo_run                                      # the main job, end to end

A dataset reference is NAME (the latest version) or NAME@N (version N, the same bytes forever).
Arguments after '--' go to Apache Beam unchanged (pipeline options such as --runner).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlstore",
        description="A versioned store of RLDS datasets: ingest logs with Apache Beam, inspect and validate versions.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--store", default=None,
                        help=f"store root: a directory, or a bucket prefix s3://BUCKET/PREFIX or gs://BUCKET/PREFIX "
                             f"(default: ${ROOT_ENV} if set, else {DEFAULT_ROOT})")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    silence()  # before anything imports TF
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
    except OSError as error:  # the machine said no (read-only store, full disk, permissions): one line too
        print(f"error: {_os_error_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _os_error_line(error: OSError) -> str:
    reason = error.strerror or str(error) or type(error).__name__
    if error.filename2:  # rename, link: both paths matter
        return f"{error.filename} -> {error.filename2}: {reason}"
    return f"{error.filename}: {reason}" if error.filename else reason


def entry_point() -> None:
    """Console-script entry: exits without running TF's noisy interpreter-shutdown hooks."""
    exit_now(main())
