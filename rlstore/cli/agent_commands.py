"""Agent commands: train, eval, export. Every registered agent (rlstore.agents.registry) plugs in unchanged.

    rlstore train bc --dataset NAME[@V] --steps N --out DIR [--batch-size B] [--seed S]
                     [--eval-env ENV --eval-every K]
    rlstore eval --checkpoint DIR --env ENV --episodes N [--json]
    rlstore export --checkpoint DIR --saved-model OUT

TensorFlow is imported only when one of these commands runs, never to build the parser.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from rlstore import seeds
from rlstore.cli.formatting import to_json
from rlstore.store import Store


def register(commands) -> None:
    from rlstore.agents import registry
    from rlstore.agents.config_args import add_config_arguments

    train = commands.add_parser(
        "train", help="train an agent from a dataset version",
        description="Trains an agent from a store version into a run directory (run.json manifest, "
                    "checkpoints, TensorBoard and CSV logs). Running it again on the same --out resumes "
                    "from the latest checkpoint and continues the step count up to --steps.")
    agents = train.add_subparsers(dest="agent", required=True, metavar="AGENT")
    for name, entry in sorted(registry.AGENTS.items()):
        parser = agents.add_parser(name, help=entry.description, description=entry.description)
        parser.add_argument("--dataset", required=True, metavar="NAME[@V]", help="dataset version to train on")
        parser.add_argument("--steps", type=int, required=True, metavar="N", help="total updates for the run")
        parser.add_argument("--out", required=True, metavar="DIR", help="run directory (resumed if it exists)")
        parser.add_argument("--seed", type=int, default=None, help="seed for networks and data order (default: 0)")
        parser.add_argument("--eval-env", metavar="ENV", help="environment spec to evaluate on, e.g. catch or gym:CartPole-v1")
        parser.add_argument("--eval-every", type=int, default=0, metavar="K",
                            help="evaluate every K updates (default: only at the start and the end)")
        parser.add_argument("--eval-episodes", type=int, default=10, metavar="E", help="episodes per evaluation (default: 10)")
        parser.add_argument("--log-every", type=int, default=100, metavar="L", help="updates per logged row (default: 100)")
        parser.add_argument("--checkpoint-every", type=int, default=1000, metavar="C",
                            help="updates between checkpoints (default: 1000; one is always saved at the end)")
        add_config_arguments(parser, entry.config_class())
        parser.set_defaults(run=_train)

    evaluate = commands.add_parser("eval", help="evaluate a trained agent on an environment")
    evaluate.add_argument("--checkpoint", required=True, metavar="DIR", help="run directory written by `train`")
    evaluate.add_argument("--env", required=True, metavar="ENV", help="environment spec, e.g. catch or gym:CartPole-v1")
    evaluate.add_argument("--episodes", type=int, default=10, metavar="N", help="episodes to play (default: 10)")
    evaluate.add_argument("--seed", type=int, default=seeds.DEFAULT_EVALUATION_SEED,
                          help="environment seed (default: 10000, the first evaluation seed; demonstrations use 0-999, "
                               "online actors 1000-4999, evaluations during training 5000-9999: see rlstore.seeds)")
    evaluate.add_argument("--json", action="store_true",
                          help="print JSON (return_mean, return_std, episodes, returns, seed, seed_use, and "
                               "success_rate where the task is won or lost: catch, deep_sea, tmaze, MiniGrid)")
    evaluate.set_defaults(run=_eval)

    export = commands.add_parser(
        "export", help="export a trained policy as a SavedModel",
        description="Writes the policy of a run's latest checkpoint as a TensorFlow SavedModel: "
                    "`tf.saved_model.load(OUT)(observations)` returns actions, with no rlstore code.")
    export.add_argument("--checkpoint", required=True, metavar="DIR", help="run directory written by `train`")
    export.add_argument("--saved-model", required=True, metavar="OUT", help="directory to write the SavedModel to")
    export.set_defaults(run=_export)


def _train(store: Store, args: argparse.Namespace, _: Sequence[str]) -> int:
    from rlstore.agents import registry
    from rlstore.agents.config_args import given_overrides
    from rlstore.agents.training import Schedule, train

    overrides = given_overrides(args, registry.get(args.agent).config_class())
    schedule = Schedule(steps=args.steps, log_every=args.log_every, checkpoint_every=args.checkpoint_every,
                        eval_env=args.eval_env, eval_every=args.eval_every, eval_episodes=args.eval_episodes)
    summary = train(args.agent, store, args.dataset, args.out, schedule, config=overrides, seed=args.seed,
                    progress=sys.stderr.isatty())
    loss = summary["metrics"].get("loss")
    print(f"trained {args.agent} on {summary['dataset']}: steps {summary['start_step']} -> {summary['steps']}"
          + (f", loss {loss:.4f}" if loss is not None else "") + f"; run in {summary['run_dir']}")
    if summary["evaluations"]:
        last = summary["evaluations"][-1]
        print(f"eval at step {last['step']}: return {last['return_mean']:.3f} ± {last['return_std']:.3f} on {args.eval_env}")
    return 0


def _eval(_: Store, args: argparse.Namespace, __: Sequence[str]) -> int:
    from rlstore.agents.evaluation import evaluate
    from rlstore.agents.runs import load_trained

    agent = load_trained(args.checkpoint)
    result = evaluate(agent.make_actor, args.env, args.episodes, seed=args.seed, specs=agent.specs,
                      progress=sys.stderr.isatty())
    result.update(checkpoint=args.checkpoint, agent=agent.manifest["agent"], step=agent.step,
                  dataset=agent.manifest["dataset"]["ref"])
    if args.json:
        print(to_json(result))
    else:
        print(f"{result['agent']} (step {result['step']}, trained on {result['dataset']}) on {args.env}: "
              f"return {result['return_mean']:.3f} ± {result['return_std']:.3f} over {args.episodes} episodes "
              f"(min {result['return_min']:.3f}, max {result['return_max']:.3f})"
              + (f", success {result['success_rate']:.0%}" if "success_rate" in result else "")
              + f"; env seed {result['seed']} ({result['seed_use']})")
    return 0


def _export(_: Store, args: argparse.Namespace, __: Sequence[str]) -> int:
    from rlstore.agents.export import export_saved_model
    from rlstore.agents.runs import load_trained

    agent = load_trained(args.checkpoint)
    out = export_saved_model(agent, args.saved_model)
    print(f"exported {agent.manifest['agent']} (step {agent.step}) to {out}; "
          f"load with tf.saved_model.load('{out}') and call it on a batch of observations")
    return 0
