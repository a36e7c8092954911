"""Training an agent from a store version: the loop every batch agent shares.

`train` resolves the dataset version, writes (or resumes) the run directory, builds the agent
through its registered builder, restores the latest checkpoint if there is one, and runs updates
in chunks (logging each chunk, evaluating and checkpointing on schedule) until the update counter
reaches `steps`. `steps` is the total for the run, so re-running an interrupted command finishes
the job and a resumed run continues its step count.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Mapping

import tensorflow as tf

from rlstore import seeds
from rlstore.agents import registry, run_manifest
from rlstore.agents.checkpointing import Checkpointer
from rlstore.agents.config_args import config_from_json
from rlstore.agents.determinism import deterministic_ops, repeatability
from rlstore.agents.errors import AgentError
from rlstore.agents.evaluation import RETURN_FIELDS, env_num_actions, evaluate, make_env
from rlstore.agents.logging import RunLogger
from rlstore.agents.runs import RunDirectory
from rlstore.agents.specs import DataSpecs, specs_from_schema
from rlstore.agents.statistics import DataStatistics, compute_statistics
from rlstore.store import Store

SESSION_SEED_STRIDE = 1_000_003  # a resumed session draws a fresh, still reproducible, data order


@dataclasses.dataclass(frozen=True)
class Schedule:
    """How long to train and when to log, evaluate and checkpoint (all in updates)."""

    steps: int
    log_every: int = 100
    checkpoint_every: int = 1000
    eval_env: str | None = None
    eval_every: int = 0  # 0: evaluate only at the start and the end (when eval_env is set)
    eval_episodes: int = 10

    def __post_init__(self):
        if self.steps < 1 or self.log_every < 1 or self.checkpoint_every < 1 or self.eval_every < 0:
            raise AgentError("steps, log_every and checkpoint_every must be >= 1 and eval_every >= 0")
        if self.eval_every and not self.eval_env:
            raise AgentError("--eval-every needs --eval-env")


def train(agent: str, store: Store, dataset: str, out: str | Path, schedule: Schedule,
          config: Mapping[str, Any] | None = None, seed: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Trains (or resumes) a run in `out`; returns a summary with the last metrics and evaluations."""
    entry = registry.get(agent)
    if schedule.eval_env:
        make_env(schedule.eval_env)  # a bad spec fails now, not after the first chunk of training
    run = RunDirectory.at(out)
    manifest, statistics = _open_manifest(run, entry, agent, store, dataset, dict(config or {}), seed, schedule.eval_env)
    agent_config = config_from_json(entry.config_class(), manifest["config"])
    specs = DataSpecs.from_json(manifest["specs"])
    seed = manifest["seed"]
    session_seed = seed + SESSION_SEED_STRIDE * len(manifest["sessions"])
    with deterministic_ops(session_seed):
        return _train_session(run, entry, agent, store, manifest, statistics, schedule, agent_config, specs, seed,
                              session_seed, progress)


def _train_session(run: RunDirectory, entry: registry.AgentEntry, agent: str, store: Store, manifest: dict[str, Any],
                   statistics: DataStatistics | None, schedule: Schedule, agent_config: Any, specs: DataSpecs,
                   seed: int, session_seed: int, progress: bool) -> dict[str, Any]:
    """One session of `train` (a first run or a resumption), under deterministic ops."""
    builder = entry.make_builder()
    networks = builder.make_networks(specs, agent_config, statistics)
    data = builder.make_dataset(store, manifest["dataset"]["ref"], specs, agent_config, session_seed)
    learner = builder.make_learner(networks, data, specs, agent_config)
    checkpointer = Checkpointer(run.checkpoints, learner.checkpoint_objects())
    checkpointer.restore()
    step = start = int(learner.steps.numpy())
    session = run_manifest.start_session(manifest, start, schedule.steps)
    session["repeatability"] = repeatability(session_seed)
    run_manifest.write(run.manifest_path, manifest)

    policy = builder.make_policy(networks, specs, agent_config)
    logger = RunLogger(run.logs, schedule.steps, start, progress, description=f"train {agent}")
    evaluations: list[dict[str, Any]] = []

    def evaluate_now() -> None:
        result = evaluate(lambda env: builder.make_actor(policy, specs, env), schedule.eval_env,
                          schedule.eval_episodes, seed=seeds.tuning(seed), specs=specs)
        row = {k: result[k] for k in RETURN_FIELDS}
        logger.write("eval", step, row)
        logger.message(f"step {step}: return {row['return_mean']:.3f} ± {row['return_std']:.3f} "
                       f"over {schedule.eval_episodes} episodes of {schedule.eval_env}")
        evaluations.append({"step": step, **row})

    metrics: dict[str, float] = {}
    saved = start
    started = time.perf_counter()
    try:
        if schedule.eval_env and start == 0:
            evaluate_now()
        next_eval = _next_multiple(step, schedule.eval_every)
        while step < schedule.steps:
            chunk = min(schedule.log_every, schedule.steps - step, (next_eval or schedule.steps) - step)
            metrics = logger.train_progress(step + chunk, learner.run(chunk))
            step = int(learner.steps.numpy())
            if schedule.eval_env and (step == next_eval or step == schedule.steps):
                evaluate_now()
                next_eval = _next_multiple(step, schedule.eval_every)
            if step - saved >= schedule.checkpoint_every:
                saved = _save(checkpointer, step)
    finally:
        if step > saved or checkpointer.latest is None:
            _save(checkpointer, step)
        run_manifest.end_session(session, step)
        run_manifest.write(run.manifest_path, manifest)
        logger.close()
    return {"run_dir": str(run.path), "agent": agent, "dataset": manifest["dataset"]["ref"], "seed": seed,
            "start_step": start, "steps": step, "metrics": metrics, "evaluations": evaluations,
            "seconds": round(time.perf_counter() - started, 2)}


def _next_multiple(step: int, every: int) -> int | None:
    return (step // every + 1) * every if every else None


def _save(checkpointer: Checkpointer, step: int) -> int:
    checkpointer.save(step)
    return step


def _open_manifest(run: RunDirectory, entry: registry.AgentEntry, agent: str, store: Store, dataset: str,
                   overrides: Mapping[str, Any], seed: int | None,
                   eval_env: str | None) -> tuple[dict[str, Any], DataStatistics | None]:
    """The run's manifest (new, or resumed after checks) and, unless a checkpoint will restore the
    networks, the dataset statistics to initialise them with."""
    manifest = _resumed_manifest(run, agent, store, dataset, overrides, seed) if run.exists() else None
    if manifest is not None:
        if tf.train.latest_checkpoint(str(run.checkpoints)) is not None:
            return manifest, None
        return manifest, compute_statistics(store, manifest["dataset"]["ref"])  # died before its first checkpoint
    config = entry.make_config(overrides)
    statistics = compute_statistics(store, str(store.resolve(dataset)))
    return _new_manifest(agent, store, dataset, config, 0 if seed is None else seed, eval_env, statistics), statistics


def _new_manifest(agent: str, store: Store, dataset: str, config: Any, seed: int, eval_env: str | None,
                  statistics: DataStatistics) -> dict[str, Any]:
    data = run_manifest.dataset_entry(store, dataset)
    num_actions = None
    if statistics.max_action is not None:
        num_actions = (eval_env and env_num_actions(eval_env)) or statistics.max_action + 1
    specs = specs_from_schema(store.manifest(data["ref"]).schema, num_actions)
    return run_manifest.new_manifest(agent, data, dataclasses.asdict(config), seed, specs.to_json())


def _resumed_manifest(run: RunDirectory, agent: str, store: Store, dataset: str, overrides: Mapping[str, Any],
                      seed: int | None) -> dict[str, Any]:
    """The existing manifest, after checking that this invocation asks for the same run."""
    manifest = run_manifest.read(run.manifest_path)
    recorded = manifest["dataset"]
    data = run_manifest.dataset_entry(store, dataset)
    problems = []
    if manifest["agent"] != agent:
        problems.append(f"it trains {manifest['agent']}, not {agent}")
    if data["ref"] != recorded["ref"]:
        problems.append(f"it trains on {recorded['ref']}, not {data['ref']} (pass --dataset {recorded['ref']})")
    elif data["manifest_sha256"] != recorded["manifest_sha256"]:
        problems.append(f"{recorded['ref']} in this store is not the version the run started on")
    if seed is not None and seed != manifest["seed"]:
        problems.append(f"its seed is {manifest['seed']}, not {seed}")
    for name, value in overrides.items():
        if _jsonable(value) != manifest["config"].get(name):
            problems.append(f"its {name} is {manifest['config'].get(name)}, not {value}")
    if problems:
        raise AgentError(f"cannot resume the run in {run.path}: " + "; ".join(problems) + " (or choose a new --out)")
    return manifest


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
