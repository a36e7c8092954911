"""What every benchmark script shares: progress on stderr and the `--quick` switch.

Benchmarks print exactly one JSON line on stdout, so anything a person should see while one
runs goes to stderr through `log`.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def quick_parser(doc: str, quick_help: str) -> argparse.ArgumentParser:
    """A parser described by the first paragraph of the script's docstring, with `--quick`."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    return parser


def choose_budget(doc: str, quick: dict[str, Any], full: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """(whether --quick was given, the budget it selects) from the command line."""
    args = quick_parser(doc, f"smaller budget: {quick}").parse_args()
    return args.quick, quick if args.quick else full


def peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM). Not `getrusage`'s ru_maxrss: Linux carries that across
    exec, so a child started by a large benchmark process would report the parent's size."""
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024


def children_stdout(commands: Sequence[tuple[Sequence[str], Mapping[str, str] | None]]) -> list[str]:
    """The stdout of each (argv, extra environment) child, all started at once: a memory figure
    needs a fresh process each, and TensorFlow's import (~5 s) would otherwise be paid in turn.
    Raises CalledProcessError for the first child that failed, with its stderr."""
    children = [subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env={**os.environ, **extra} if extra else None) for argv, extra in commands]
    outputs = [child.communicate() for child in children]
    for child, (stdout, stderr) in zip(children, outputs):
        if child.returncode:
            raise subprocess.CalledProcessError(child.returncode, child.args, stdout, stderr)
    return [stdout for stdout, _ in outputs]
