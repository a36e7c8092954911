"""The actor role: the environment loop of an online run, the same for every agent.

Each actor plays its share of the run's env-step budget with the agent's behaviour policy,
refreshing weights from the learner (`VariableClient`). The agent's builder makes the actor
around an adder (`make_adder`, then `make_actor`), and the actor hands the adder every step
with its extras (`rlstore.writeback.adder.Adder`, the actor's single write path). For every
finished episode the adder:

- inserts its rows into the agent's replay tables, made by the same function that makes
  write-back and bulk-loaded rows, so they are identical to rows loaded from the store. The
  insert happens in this process: when the replay table's SampleToInsertRatio limiter says the
  learner is behind, the insert waits, and so does acting; that is how the ratio of acting to
  learning is held;
- with write-back, appends it to the store dataset through `rlstore.writeback.WriteBack`
  (a new version every `commit_every` episodes and at the end; its lineage names the run id,
  the policy and the environment), extras as step metadata. The actor's summary,
  `logs/actor-<i>.json`, is rewritten after every commit, so the versions are known even if
  the actor dies later.

Actor 0 also evaluates the greedy policy every `eval_every` env steps (counted over all
actors, estimated as its own steps times K) into logs/eval.csv: `step` is env steps there, and
`acting_seconds` the wall-clock time since acting started (time-to-threshold benchmarks read it).
Evaluations play the task without its step cost (`step_ms`, rlstore.envs.step_cost): they
measure the policy, and paying a slow simulator's cost would stall actor 0 meanwhile.
(The run's last point is the supervisor's evaluation of the final checkpoint.)
In a resumed run (rlstore.agents.online.resuming) each actor starts from the env steps it
played in earlier sessions and writes back under a run id of its session.
A stop request is honoured between episodes; an episode in flight is finished (and kept)
unless Reverb goes away under it, in which case the write-back still commits the episodes
that were finished.
"""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

from rlstore import seeds
from rlstore.agents import run_manifest
from rlstore.agents.evaluation import RETURN_FIELDS, check_environment, evaluate, make_env
from rlstore.agents.logging import RunLogger
from rlstore.agents.online.context import RunContext
from rlstore.agents.online.resuming import writer_run_id
from rlstore.agents.online.variables import VariableClient
from rlstore.agents.runs import RunDirectory
from rlstore.envs import without_step_cost
from rlstore.writeback import WriteBack

DEFAULT_UPDATE_PERIOD = 100
SUMMARY_SECONDS = 5.0  # the actor's summary is rewritten at least this often (and after every commit)


def actor_budget(context: RunContext, index: int) -> int:
    """Actor `index`'s share of the run's env steps (the shares add up to the budget)."""
    share, extra = divmod(context.env_steps, context.actors)
    return share + (1 if index < extra else 0)


def summary_path(run: RunDirectory, index: int) -> Path:
    """Actor `index`'s summary (env steps, episodes, write-back versions), rewritten as it goes."""
    return run.logs / f"actor-{index}.json"


def eval_row(result: dict[str, Any], learner_step: int) -> dict[str, Any]:
    """The logs/eval.csv row of an `rlstore.agents.evaluation.evaluate` result (actor 0's and the final one)."""
    return {"learner_step": learner_step, **{k: result[k] for k in RETURN_FIELDS}}


def run_actor(agent, context: RunContext, index: int, replay_address: str, learner_address: str,
              stop: threading.Event) -> dict[str, Any]:
    """Plays actor `index`'s share of the budget (or until `stop`); returns its summary."""
    env = make_env(context.env, seeds.acting(context.env_seed, index))
    check_environment(context.specs, env, context.env)
    start = context.actor_start_steps[index] if context.actor_start_steps else 0  # played in earlier sessions
    summary: dict[str, Any] = {"actor": index, "session": context.session, "env_steps": start, "episodes": 0,
                               "returns_last_100": [], "write_back": None}
    writer = None
    if context.write_back:
        summary["write_back"] = {"dataset": context.write_back,
                                 "run_id": writer_run_id(context.run_id, index, context.session), "versions": []}

        def committed(commit) -> None:
            summary["write_back"]["versions"].append(commit.version)
            run_manifest.write(summary_path(context.run, index), summary)

        writer = WriteBack(context.store, context.write_back, environment=context.env,
                           policy=f"{context.agent} behaviour policy, actor {index} of run {context.run_id}",
                           run_id=summary["write_back"]["run_id"], commit_every=context.commit_every,
                           compact_every=context.compact_every if index == 0 else None,  # one compactor a run
                           on_commit=committed, frame_stack=context.frame_stack)
    adder = client = evaluator = None
    try:
        adder = agent.make_adder(replay_address, writer)
        actor = agent.make_actor(index, adder)
        client = VariableClient(learner_address, actor.variables,
                                context.config_value("variable_update_period", DEFAULT_UPDATE_PERIOD))
        evaluator = _Evaluator(context, actor, start * context.actors) if index == 0 and context.eval_every else None
        budget = actor_budget(context, index)
        if not client.wait(should_stop=stop.is_set):
            return summary
        # `acting_seconds` (benchmarks: env steps/s and time to a return without start-up) counts
        # from the first action chosen, so the policy's first call (its tracing) is not in it.
        acting_started = None
        noted = time.perf_counter()
        while summary["env_steps"] < budget and not stop.is_set():
            if evaluator is not None:
                evaluator.maybe(summary["env_steps"] * context.actors, client.step,
                                time.perf_counter() - acting_started if acting_started else 0.0)
            timestep = env.reset()
            actor.observe_first(timestep)
            total = 0.0
            while not timestep.last():
                action = actor.select_action(timestep)
                acting_started = acting_started or time.perf_counter()
                timestep = env.step(action)
                actor.observe(action, timestep)
                client.update()
                total += float(timestep.reward)
                summary["env_steps"] += 1
            summary["episodes"] += 1
            summary["returns_last_100"] = (summary["returns_last_100"] + [total])[-100:]
            summary["acting_seconds"] = round(time.perf_counter() - acting_started, 3)
            if time.perf_counter() - noted >= SUMMARY_SECONDS:  # what a resume counts from without write-back
                run_manifest.write(summary_path(context.run, index), summary)
                noted = time.perf_counter()
    except Exception as error:  # after a stop request the other parts go away under us
        if not stop.is_set():
            raise
        print(f"[actor {index}] stopping: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
    finally:
        if client is not None:
            client.close()
        # waits for Reverb, then commits every finished episode not yet committed
        closed = adder.close() if adder is not None else writer.close() if writer is not None else None
        if closed is not None and (closed.compacted_versions or closed.compaction_errors):
            summary["write_back"].update(compacted_versions=closed.compacted_versions,
                                         compaction_errors=closed.compaction_errors)
        if evaluator is not None:
            evaluator.close()
        run_manifest.write(summary_path(context.run, index), summary)  # atomic, like run.json
    print(f"[actor {index}] done: {summary['env_steps']} env steps, {summary['episodes']} episodes"
          + (f", versions {summary['write_back']['versions']} of {context.write_back}" if writer else ""), flush=True)
    return summary


class _Evaluator:
    """Actor 0's periodic evaluation of the greedy policy (environment built with the run's env seed)."""

    def __init__(self, context: RunContext, actor: Any, start: int = 0):
        """`start`: the run's env steps played before this session (rows logged up to it are kept)."""
        self._context = context
        self._actor = actor
        self._next = -(-start // context.eval_every) * context.eval_every
        self._logger = RunLogger(context.run.logs, total_steps=0, initial_step=start, progress=False,
                                 description="eval")

    def maybe(self, env_steps: int, learner_step: int, acting_seconds: float) -> None:
        if env_steps < self._next:
            return
        self._next = (env_steps // self._context.eval_every + 1) * self._context.eval_every
        result = evaluate(lambda env: self._actor.greedy_action, without_step_cost(self._context.env),
                          self._context.eval_episodes, seed=seeds.tuning(self._context.env_seed),
                          specs=self._context.specs)
        row = {**eval_row(result, learner_step), "acting_seconds": round(acting_seconds, 3)}
        self._logger.write("eval", env_steps, row)
        print(f"[actor 0] {env_steps} env steps, learner step {learner_step}: return "
              f"{row['return_mean']:.3f} ± {row['return_std']:.3f}", flush=True)

    def close(self) -> None:
        self._logger.close()

