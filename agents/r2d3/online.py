"""R2D3 online (`rlstore run r2d3`): the agent's side of rlstore.agents.online's plug-in shape.

    replay   two prioritized tables (rlstore.agents.r2d3.replay): the demonstrations, bulk-loaded from
             the store, and the actors' sequences, rate-limited to `samples_per_insert`
    learner  R2D3Learner: `pretrain_steps` updates on demonstrations alone, then batches mixing
             both tables at `demo_ratio`, priorities written back in-graph
    actor i  ε_i-greedy on the LSTM Q-network, ε_i = ε^(1 + α·i/(K-1)); its adder puts its
             sequences into replay with the recurrent state each starts from (recorded with
             every step as extras, kept as step metadata `core_state/<i>` when written back)

Without `--demos` the run is R2D2: only the agent table exists and `demo_ratio` is unused. The
networks are the builder's, so the run directory's checkpoints serve `rlstore eval`/`export`.
"""
from __future__ import annotations

from typing import Any, Sequence

import dm_env
import numpy as np
import tensorflow as tf

from rlstore.agents.actors import RecurrentActor
from rlstore.agents.errors import AgentError
from rlstore.agents.online.context import RunContext
from rlstore.agents.prioritized import SAMPLE_TIMEOUT_MS
from rlstore.agents.r2d3 import replay
from rlstore.agents.r2d3.acting import RecurrentPolicy, actor_epsilon
from rlstore.agents.r2d3.builder import R2D3Builder
from rlstore.agents.r2d3.learning import R2D3Learner
from rlstore.agents.statistics import compute_statistics
from rlstore.replay import load_version
from rlstore.writeback import WriteBack
from rlstore.writeback.adder import Adder

EXPLORATION_SEED_STRIDE = 7919


class R2D3Online:
    """`factory(context) -> OnlineBuilder` for R2D3 (see rlstore.agents.online): replay tables,
    learner, adder and actors."""

    def __init__(self, context: RunContext):
        if not context.specs.action.discrete:
            raise AgentError(f"R2D3 needs discrete actions; {context.env!r} has continuous ones")
        self._context = context

    def make_replay_tables(self) -> list:
        context = self._context
        if not context.demos:
            return replay.tables(context.config, context.specs, None, frame_stack=context.frame_stack)
        return replay.tables(context.config, context.specs, context.store.manifest(context.demos).schema,
                             replay.demo_window_count(context.store, context.demos, context.config),
                             frame_stack=context.frame_stack)

    def fill_replay(self, address: str) -> None:
        if self._context.demos:
            load_version(address, self._context.store, self._context.demos, replay.layout(self._context.config))

    def make_learner(self, replay_address: str) -> "OnlineLearner":
        return OnlineLearner(self._context, replay_address)

    def make_adder(self, replay_address: str, writer: WriteBack | None) -> Adder:
        """The agent's sequences, each with the LSTM state recorded with its first step (the
        actor's extras), into the agent table; with a writer, the episodes into the store. On
        frame-stacked envs (`atari:`) one frame per step, in Reverb (each episode's frames once,
        the sequences referencing them) and in the store."""
        frame_stack = self._context.frame_stack
        return Adder(replay.agent_inserter(replay_address, self._context.config, frame_stack), writer,
                     frame_stack=frame_stack)

    def make_actor(self, index: int, adder: Adder) -> "OnlineActor":
        return OnlineActor(self._context, index, adder)


class OnlineLearner:
    """R2D3Learner over the replay server, in two phases as DQfD's online learner: with
    demonstrations and `pretrain_steps` > 0, first that many updates on demonstration sequences
    alone (the actors wait for the weights: `ready()`), so that acting starts from a policy that
    follows the demonstrations instead of from random weights; then mixed batches at `demo_ratio`.
    Returns early (fewer updates) when replay starves it."""

    def __init__(self, context: RunContext, replay_address: str):
        tf.random.set_seed(context.seed)
        statistics = compute_statistics(context.store, context.demos) if context.demos else None
        self._networks = R2D3Builder().make_networks(context.specs, context.config, statistics)
        self._address = replay_address
        self._context = context
        self._with_demos = context.demos is not None
        self._pretrain_steps = context.config.pretrain_steps if self._with_demos else 0
        self._rebuilds = 0
        self._pretraining = self._pretrain_steps > 0
        self._learner = R2D3Learner(self._networks, self._batches(), context.config,
                                    replay.priority_writer(replay_address, self._with_demos))
        self.steps = self._learner.steps

    def variables(self) -> Sequence[tf.Variable]:
        return self._networks.online.variables

    def checkpoint_objects(self) -> dict[str, Any]:
        return self._learner.checkpoint_objects()

    def ready(self) -> bool:
        return int(self.steps.numpy()) >= self._pretrain_steps

    def run(self, num_updates: int) -> dict[str, float]:
        remaining = self._pretrain_steps - int(self.steps.numpy())
        if self._pretraining != (remaining > 0):  # the phase changed (or a resumed run is past it)
            self._pretraining = remaining > 0
            self._learner.set_dataset(self._batches())
        try:
            return self._learner.run(min(num_updates, remaining) if self._pretraining else num_updates)
        except tf.errors.OutOfRangeError:  # the rate limiter held samples back for SAMPLE_TIMEOUT_MS
            self._learner.set_dataset(self._batches())
            return {}

    def _batches(self) -> tf.data.Dataset:
        self._rebuilds += 1
        if self._pretraining:
            return replay.demo_batches(self._address, self._context.config)
        return replay.replay_batches(self._address, self._context.config, self._with_demos,
                                     seed=self._context.seed + self._rebuilds, timeout_ms=SAMPLE_TIMEOUT_MS)


class OnlineActor:
    """ε_i-greedy behaviour and greedy evaluation over one copy of the online network. Every step
    goes to the adder with the LSTM state its action was chosen from (extras `core_state`)."""

    def __init__(self, context: RunContext, index: int, adder: Adder):
        config, specs = context.config, context.specs
        network = R2D3Builder().make_networks(specs, config).online
        self.variables = network.variables
        self.epsilon = actor_epsilon(index, context.actors, config.epsilon, config.epsilon_alpha)
        seed = context.seed * EXPLORATION_SEED_STRIDE + index
        self._behaviour = RecurrentActor(RecurrentPolicy(network, specs.action, self.epsilon, seed=seed), specs)
        self._greedy = RecurrentActor(RecurrentPolicy(network, specs.action), specs)
        self._adder = adder

    def select_action(self, timestep: dm_env.TimeStep) -> Any:
        return self._behaviour(timestep)

    def observe_first(self, timestep: dm_env.TimeStep) -> None:
        self._adder.observe_first(timestep)

    def observe(self, action: Any, next_timestep: dm_env.TimeStep) -> None:
        self._adder.observe(action, next_timestep, extras=core_state_extras(self._behaviour.step_state))

    def greedy_action(self, timestep: dm_env.TimeStep) -> Any:
        return self._greedy(timestep)


def core_state_extras(state: Sequence[np.ndarray]) -> dict[str, Any]:
    """A batch-of-one LSTM state as the adder's extras: step metadata `core_state/<i>` per part,
    which sequence items take as their `core_state` (rlstore.replay.tables.with_core_state)."""
    return {"core_state": {str(part): np.asarray(value)[0] for part, value in enumerate(state)}}
