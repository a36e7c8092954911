"""`rlstore record`: drive an environment through the write-back writer into a dataset."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Sequence

from rlstore.store import Store


def register(commands) -> None:
    record = commands.add_parser(
        "record", help="play episodes with a policy, appending them to a dataset (and Reverb)",
        description="Plays N episodes of ENV with a random or scripted-expert policy through the write-back "
                    "writer: finished episodes are appended to DATASET, committed as a new version every "
                    "--commit-every episodes and at the end (lineage: run id, policy, environment); with "
                    "--replay, their rows also go into that Reverb server's tables, made exactly as "
                    "`rlstore serve` makes them from the store (same flags). Ctrl-C or SIGTERM stops it after "
                    "the current episode and commits every finished one; killed (kill -9) at any moment, it "
                    "loses at most the episodes since its last commit. Frame-stacked observations (an atari: env's "
                    "84x84xK stacks) are stored one frame per step, with K in the schema, in parquet shards "
                    "(a TFRecord dataset's own format when appending to one); readers rebuild the stacks.")
    record.add_argument("--env", required=True, help="environment spec, e.g. catch, gym:CartPole-v1 or atari:Pong")
    record.add_argument("--policy", required=True, choices=("random", "expert"))
    record.add_argument("--episodes", required=True, type=int, help="episodes to play")
    record.add_argument("--dataset", required=True, help="dataset to append to (created if missing)")
    record.add_argument("--replay", metavar="HOST:PORT", help="Reverb server to insert rows into")
    record.add_argument("--tables", default="transitions",
                        help="comma-separated tables to fill: transitions, sequences (default: transitions)")
    record.add_argument("--n-step", type=int, default=1, help="n of the n-step transitions (default: 1)")
    record.add_argument("--gamma", type=float, default=0.99, help="discount of the n-step sums (default: 0.99)")
    record.add_argument("--sequence-length", type=int, default=40, help="learning steps per sequence (default 40)")
    record.add_argument("--period", type=int, default=20, help="steps between sequence starts (default 20)")
    record.add_argument("--burn-in", type=int, default=0, help="extra leading steps per sequence (default 0)")
    record.add_argument("--commit-every", type=int, default=100, help="episodes per version (default: 100)")
    record.add_argument("--compact-every", type=int, metavar="K",
                        help="compact the dataset after every K-th commit, in the background (default: never)")
    record.add_argument("--seed", type=int, default=0, help="environment and policy seed (default: 0)")
    record.add_argument("--cues", choices=("balanced", "natural"), default="balanced",
                        help="memory tasks (tmaze, MiniGrid memory): 'balanced' (default) shows every hidden cue "
                             "equally often, skipping the reset of an episode whose cue is ahead (MiniGrid memory, Random "
                             "sizes: in twins, each layout twice with either start-room object); 'natural' keeps the env's "
                             "own draws")
    record.add_argument("--run-id", help="run id recorded in lineage and episode ids (default: time + random)")
    record.set_defaults(run=_record)


def _record(store: Store, args: argparse.Namespace, _: Sequence[str]) -> int:
    from rlstore.envs import balance_cues, make_environment, make_policy, parse_spec
    from rlstore.writeback import Commit, WriteBack, drive

    environment = make_environment(args.env, seed=args.seed)
    if args.cues == "balanced":
        environment = balance_cues(environment)
    policy = make_policy(args.policy, args.env, environment, seed=args.seed)

    def report(commit: Commit) -> None:
        print(f"committed {args.dataset}@{commit.version}: {commit.episodes} episodes "
              f"({commit.run_episodes} in this run so far)", flush=True)

    stop = threading.Event()
    handlers = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        with WriteBack(store, args.dataset, environment=args.env, policy=args.policy, run_id=args.run_id,
                       commit_every=args.commit_every, replay=args.replay, compact_every=args.compact_every,
                       layout=_layout(args) if args.replay else None, on_commit=report,
                       frame_stack=parse_spec(args.env).frame_stack) as writer:
            print(f"recording run {writer.run_id}", flush=True)
            drive(environment, policy, writer, args.episodes, stop)
            if stop.is_set():
                print("stopping: committing the finished episodes", flush=True)
            summary = writer.close()
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    versions = f"versions {summary.versions[0]}..{summary.versions[-1]}" if summary.versions else "no version"
    items = "".join(f", {count} {table} items" for table, count in summary.replay_items.items())
    print(f"recorded {summary.episodes} episodes ({summary.steps} steps{items}) into {args.dataset}: {versions}, "
          f"run {summary.run_id}")
    if summary.compacted_versions:
        print(f"compacted into versions {', '.join(map(str, summary.compacted_versions))}")
    for error in summary.compaction_errors:
        print(f"warning: compaction failed: {error}", file=sys.stderr)
    return 0


def _layout(args: argparse.Namespace):
    from rlstore.replay import Layout, ReplayError

    try:
        return Layout(tables=tuple(name.strip() for name in args.tables.split(",") if name.strip()),
                      n_step=args.n_step, gamma=args.gamma, sequence_length=args.sequence_length,
                      sequence_period=args.period, burn_in=args.burn_in)
    except ValueError as error:
        raise ReplayError(str(error)) from None
