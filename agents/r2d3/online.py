"""R2D3 online (`rlstore run r2d3`): the agent's side of rlstore.agents.online's plug-in shape.

    replay   two prioritized tables (rlstore.agents.r2d3.replay): the demonstrations, bulk-loaded from
             the store, and the actors' sequences, rate-limited to `samples_per_insert`
    learner  R2D3Learner on batches mixing both at `demo_ratio`, priorities written back in-graph
    actor i  ε_i-greedy on the LSTM Q-network, ε_i = ε^(1 + α·i/(K-1)); its sequences go into
             replay with the recurrent state each starts from (rlstore.agents.r2d3.adder)

Without `--demos` the run is R2D2: only the agent table exists and `demo_ratio` is unused. The
networks are the builder's, so the run directory's checkpoints serve `rlstore eval`/`export`.
"""
from __future__ import annotations

from typing import Any, Sequence

import dm_env
import tensorflow as tf

from rlstore.agents.actors import RecurrentActor
from rlstore.agents.errors import AgentError
from rlstore.agents.online.context import RunContext
from rlstore.agents.prioritized import SAMPLE_TIMEOUT_MS
from rlstore.agents.r2d3 import replay
from rlstore.agents.r2d3.acting import RecurrentPolicy, actor_epsilon
from rlstore.agents.r2d3.adder import SequenceInserter, StepStates
from rlstore.agents.r2d3.builder import R2D3Builder
from rlstore.agents.r2d3.learning import R2D3Learner
from rlstore.agents.statistics import compute_statistics
from rlstore.replay import load_version

EXPLORATION_SEED_STRIDE = 7919


class R2D3Online:
    """`factory(context) -> OnlineAgent` for R2D3 (see rlstore.agents.online)."""

    def __init__(self, context: RunContext):
        if not context.specs.action.discrete:
            raise AgentError(f"R2D3 needs discrete actions; {context.env!r} has continuous ones")
        self._context = context

    def replay_tables(self) -> list:
        context = self._context
        schema = context.store.manifest(context.demos).schema if context.demos else None
        return replay.tables(context.config, context.specs, schema)

    def fill_replay(self, address: str) -> None:
        if self._context.demos:
            load_version(address, self._context.store, self._context.demos, replay.layout(self._context.config))

    def make_learner(self, replay_address: str) -> "OnlineLearner":
        return OnlineLearner(self._context, replay_address)

    def make_actor(self, index: int) -> "OnlineActor":
        return OnlineActor(self._context, index)


class OnlineLearner:
    """R2D3Learner over the replay server; returns early (fewer updates) when replay starves it."""

    def __init__(self, context: RunContext, replay_address: str):
        tf.random.set_seed(context.seed)
        statistics = compute_statistics(context.store, context.demos) if context.demos else None
        self._networks = R2D3Builder().make_networks(context.specs, context.config, statistics)
        self._address = replay_address
        self._context = context
        self._with_demos = context.demos is not None
        self._rebuilds = 0
        self._learner = R2D3Learner(self._networks, self._batches(), context.config,
                                    replay.priority_writer(replay_address, self._with_demos))
        self.steps = self._learner.steps

    def variables(self) -> Sequence[tf.Variable]:
        return self._networks.online.variables

    def checkpoint_objects(self) -> dict[str, Any]:
        return self._learner.checkpoint_objects()

    def ready(self) -> bool:
        return True

    def run(self, num_updates: int) -> dict[str, float]:
        try:
            return self._learner.run(num_updates)
        except tf.errors.OutOfRangeError:  # the rate limiter held samples back for SAMPLE_TIMEOUT_MS
            self._learner.set_dataset(self._batches())
            return {}

    def _batches(self) -> tf.data.Dataset:
        self._rebuilds += 1
        return replay.replay_batches(self._address, self._context.config, self._with_demos,
                                     seed=self._context.seed + self._rebuilds, timeout_ms=SAMPLE_TIMEOUT_MS)


class OnlineActor:
    """ε_i-greedy behaviour and greedy evaluation over one copy of the online network."""

    def __init__(self, context: RunContext, index: int):
        config, specs = context.config, context.specs
        network = R2D3Builder().make_networks(specs, config).online
        self.variables = network.variables
        self.layout = replay.layout(config, is_demo=False)
        self.epsilon = actor_epsilon(index, context.actors, config.epsilon, config.epsilon_alpha)
        seed = context.seed * EXPLORATION_SEED_STRIDE + index
        self._behaviour = RecurrentActor(RecurrentPolicy(network, specs.action, self.epsilon, seed=seed), specs)
        self._greedy = RecurrentActor(RecurrentPolicy(network, specs.action), specs)
        self._config = config
        self._states: list = []

    def select_action(self, timestep: dm_env.TimeStep) -> Any:
        if timestep.first():
            self._states = []
        action = self._behaviour(timestep)
        self._states.append(self._behaviour.step_state)
        return action

    def greedy_action(self, timestep: dm_env.TimeStep) -> Any:
        return self._greedy(timestep)

    def make_inserter(self, address: str) -> SequenceInserter:
        return SequenceInserter(address, self._config, self._episode_states)

    def _episode_states(self) -> StepStates:
        """The states of the episode just finished: one per action, then the one after the last."""
        states, self._states = self._states + [self._behaviour.state], []
        return states
