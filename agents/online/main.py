"""A child process of an online run: `python -m rlstore.agents.online.main --out DIR --role ROLE ...`.

Started by `rlstore.agents.online.run` (through a ProcessGroup) for `rlstore run --role all`; the run
directory's run.json tells it everything else. SIGINT/SIGTERM ask for a clean stop (exit 0);
any other failure prints one line (and the traceback, which lands in the child's log) and
exits 1, which makes the supervisor stop the whole run.
"""
from __future__ import annotations

import argparse
import sys
import traceback

from rlstore.agents.online.processes import stop_event, watch_lifeline
from rlstore.child_env import exit_now


def main(argv: list[str]) -> int:
    from rlstore.quiet import silence

    silence()  # before TF
    parser = argparse.ArgumentParser(prog="rlstore.agents.online.main")
    parser.add_argument("--out", required=True)
    parser.add_argument("--role", required=True, choices=("replay", "learner", "actor"))
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--replay-address", required=True)
    parser.add_argument("--learner-address", required=True)
    args = parser.parse_args(argv)
    stop = stop_event()
    watch_lifeline()
    from rlstore.agents.online.run import run_role

    try:
        run_role(args.out, args.role, args.index, args.replay_address, args.learner_address, stop)
    except Exception as error:
        traceback.print_exc()
        from rlstore.errors import describe

        part = args.role if args.role != "actor" else f"actor {args.index}"
        print(f"error: [{part}] {describe(error)}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    exit_now(main(sys.argv[1:]))
