"""`rlstore demo`: the main job on the built-in default."""
from __future__ import annotations

import argparse
from typing import Sequence

from rlstore.store import Store


def register(commands) -> None:
    demo = commands.add_parser(
        "demo", help="run the main job on the built-in default",
        description="Records expert demonstrations of a built-in task as npz logs, ingests them with the "
                    "Beam pipeline into a store under OUT, trains BC on the new version, evaluates it next "
                    "to the expert and a random policy, exports it, runs DQfD online on the same task with the "
                    "demonstrations mixed in (its episodes written back into the store as new versions), and "
                    "writes OUT/report.md with a PNG of both learning curves.")
    demo.add_argument("--out", default="demo_run", help="output directory (default: demo_run)")
    demo.add_argument("--env", default="catch", help="environment spec (default: catch)")
    demo.add_argument("--episodes", type=int, default=100, help="demonstration episodes to record (default: 100)")
    demo.add_argument("--steps", type=int, default=1000, help="BC updates (default: 1000)")
    demo.add_argument("--online-steps", type=int, default=3000,
                      help="environment steps of the DQfD online run (default: 3000; 0 leaves it out)")
    demo.add_argument("--eval-episodes", type=int, default=100, help="evaluation episodes per policy (default: 100)")
    demo.add_argument("--seed", type=int, default=0, help="seed for recording and training (default: 0)")
    demo.set_defaults(run=_demo)


def _demo(_: Store, args: argparse.Namespace, beam_args: Sequence[str]) -> int:
    from rlstore.demo import run_main_job

    run_main_job(args.out, env_spec=args.env, episodes=args.episodes, seed=args.seed, steps=args.steps,
                 online_steps=args.online_steps,
                 eval_episodes=args.eval_episodes, beam_args=beam_args)
    return 0
