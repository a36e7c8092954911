"""`rlstore run AGENT`: an online run with demonstrations mixed in (a thin layer over rlstore.agents.online.run).

    rlstore --store S run dqfd --env ENV --demos NAME[@V] --env-steps N --out DIR [--resume]
            [--demo-ratio R] [--write-back NAME] [--actors K] [--seed S] [--env-seed E] [--stop-at-return R]
            [--role all|replay|learner|actor --replay-address H:P --learner-address H:P [--index I] [--expose]]

The replay and learner roles start Reverb servers that listen on every interface with no
authentication, so they refuse to start without --expose; `--role all` says so on its first line.
A run directory that holds a stopped or crashed run is continued only with --resume
(rlstore.agents.online.resuming says what continues from where).

Every field of the agent's config is a flag too, as for `train`. TensorFlow is imported only
when the command runs.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from rlstore.cli.formatting import to_json
from rlstore.store import Store


def register(commands) -> None:
    from rlstore.agents import registry
    from rlstore.agents.config_args import add_config_arguments

    run = commands.add_parser(
        "run", help="run an agent online: acting, learning, demonstrations mixed in, episodes written back",
        description="Starts a Reverb replay server (demonstrations bulk-loaded from a store version), a learner "
                    "and K actors as processes, runs until the actors have played --env-steps environment steps, "
                    "then evaluates the final checkpoint. The run directory works with `rlstore eval` and "
                    "`rlstore export`. Ctrl-C stops every process cleanly and keeps what was committed; "
                    "the same command with --resume continues a stopped or crashed run.")
    agents = run.add_subparsers(dest="agent", required=True, metavar="AGENT")
    for name, entry in sorted(registry.AGENTS.items()):
        if not entry.online:
            continue
        parser = agents.add_parser(name, help=entry.description, description=entry.description)
        parser.add_argument("--env", required=True, metavar="ENV", help="environment spec, e.g. deep_sea:size=20")
        parser.add_argument("--demos", metavar="NAME[@V]", help="demonstration dataset version")
        parser.add_argument("--env-steps", type=int, required=True, metavar="N",
                            help="environment steps over all actors (each finishes its last episode)")
        parser.add_argument("--out", required=True, metavar="DIR",
                            help="run directory; if it holds a stopped or crashed run, pass --resume to continue it")
        parser.add_argument("--resume", action="store_true",
                            help="continue the run in --out: the learner from its last checkpoint, replay from its "
                                 "last Reverb checkpoint, actors from the env steps they committed, up to --env-steps "
                                 "(the other options must be the run's)")
        parser.add_argument("--checkpoint-every", type=float, default=600.0, metavar="SECONDS",
                            help="seconds between checkpoints of the learner and of replay (Reverb's) into the run "
                                 "directory, what --resume restores (default: 600; 0: none on a timer). Both also "
                                 "checkpoint when the run stops, the learner every 2,000 updates too")
        parser.add_argument("--actors", type=int, default=1, metavar="K", help="actor processes (default: 1)")
        parser.add_argument("--write-back", metavar="NAME",
                            help="store dataset every actor appends its episodes to (a version per commit)")
        parser.add_argument("--commit-every", type=int, default=50, metavar="E",
                            help="episodes per write-back version, per actor (default: 50)")
        parser.add_argument("--compact-every", type=int, metavar="K",
                            help="compact the write-back dataset after every K-th commit of actor 0, in the "
                                 "background (default: never)")
        parser.add_argument("--seed", type=int, default=0, help="seed of networks, exploration and sampling (default: 0)")
        parser.add_argument("--env-seed", type=int, default=0,
                            help="seed every environment of the run is built with (default: 0); hidden task "
                                 "parameters (deep_sea's action mapping, the T-maze's corridor) are the env spec's "
                                 "mapping_seed, not this seed's")
        parser.add_argument("--preset", choices=("auto", "none"), default="auto",
                            help="auto (default): start from the env's per-suite preset where one exists (r2d3 on "
                                 "memory tasks, dqfd on MinAtar; see the README), flags still win; none: the "
                                 "agent's plain defaults")
        parser.add_argument("--eval-every", type=int, default=None, metavar="N",
                            help="env steps between evaluations of the greedy policy (default: a tenth of --env-steps; "
                                 "0: none while running)")
        parser.add_argument("--stop-at-return", type=float, metavar="R",
                            help="stop the run (cleanly, as Ctrl-C would) once an evaluation while running reaches a "
                                 "mean return of R, before the --env-steps budget is played; the summary names that "
                                 "evaluation (stopped_at_return)")
        parser.add_argument("--eval-episodes", type=int, default=10, metavar="E",
                            help="episodes per evaluation while running (default: 10)")
        parser.add_argument("--final-eval-episodes", type=int, default=50, metavar="E",
                            help="episodes of the final evaluation (default: 50)")
        parser.add_argument("--role", default="all", choices=("all", "replay", "learner", "actor"),
                            help="all (default): every part here, supervised; otherwise only that part, talking to "
                                 "the others at --replay-address and --learner-address")
        parser.add_argument("--index", type=int, default=0, metavar="I", help="with --role actor: which actor")
        parser.add_argument("--replay-address", metavar="HOST:PORT", help="the replay server (--role other than all)")
        parser.add_argument("--learner-address", metavar="HOST:PORT", help="the learner's variable server")
        parser.add_argument("--expose", action="store_true",
                            help="with --role replay or learner: start although its Reverb server listens on every "
                                 "interface with no authentication (required; README: Security)")
        parser.add_argument("--json", action="store_true", help="print the summary as JSON")
        add_config_arguments(parser, entry.config_class())
        parser.set_defaults(run=_run)


def _run(store: Store, args: argparse.Namespace, _: Sequence[str]) -> int:
    from rlstore.agents import registry
    from rlstore.agents.config_args import given_overrides
    from rlstore.agents.online.run import OnlineOptions, run

    options = OnlineOptions(env=args.env, env_steps=args.env_steps, out=args.out, demos=args.demos,
                            actors=args.actors, write_back=args.write_back, commit_every=args.commit_every,
                            compact_every=args.compact_every,
                            seed=args.seed, env_seed=args.env_seed, preset=args.preset, role=args.role, index=args.index,
                            replay_address=args.replay_address, learner_address=args.learner_address,
                            eval_episodes=args.eval_episodes, eval_every_env_steps=args.eval_every,
                            final_eval_episodes=args.final_eval_episodes, expose=args.expose, resume=args.resume,
                            checkpoint_every=args.checkpoint_every, stop_at_return=args.stop_at_return)
    summary = run(args.agent, store, options, given_overrides(args, registry.get(args.agent).config_class()))
    if args.json:
        print(to_json(summary))
    elif args.role == "all":
        final = summary["final_evaluation"]
        versions = summary["write_back"]["versions"]
        print(f"ran {args.agent} online on {args.env}: {summary['env_steps']} env steps, {summary['learner_steps']} "
              f"updates, demos {summary['demos'] or 'none'} at ratio {summary['demo_ratio']}; final return "
              f"{final['return_mean']:.3f} ± {final['return_std']:.3f} over {final['episodes']} episodes"
              + (f"; wrote versions {versions} of {args.write_back}" if args.write_back else "")
              + f"; run in {summary['run_dir']}", file=sys.stdout)
    return 0
