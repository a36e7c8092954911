"""DQfD online (`rlstore run dqfd`): the agent's side of rlstore.agents.online's plug-in shape.

Replay: rlstore.agents.dqfd.replay (a never-evicted demonstration table, bulk-loaded from the exact
demonstration version, and the agent's rate-limited replay table). Learner:
rlstore.agents.dqfd.online_learning (pre-training on demonstrations, then mixed prioritized batches).
Actors: ε-greedy on the learner's latest online Q-network (rlstore.agents.dqfd.acting).

With `demo_ratio` 0 the run uses no demonstrations at all (no demonstration table, no
pre-training; the margin loss sees no demonstration rows): plain prioritized n-step double
DQN, the control DQfD is measured against.
"""
from __future__ import annotations

import reverb
import tensorflow as tf

from rlstore.agents.dqfd import replay
from rlstore.agents.dqfd.acting import EpsilonGreedyActor
from rlstore.agents.dqfd.builder import DQfDBuilder
from rlstore.agents.dqfd.online_learning import OnlineDQfDLearner
from rlstore.agents.errors import AgentError
from rlstore.agents.online.context import RunContext
from rlstore.agents.statistics import compute_statistics
from rlstore.replay import TRANSITIONS, load_version
from rlstore.replay.tables import preload_bound
from rlstore.writeback import WriteBack
from rlstore.writeback.adder import Adder
from rlstore.writeback.replay import ReplayInserter

ACTOR_SEED_STRIDE = 7919  # actors explore with different, reproducible random streams


class DQfDOnline:
    """`factory(context) -> OnlineBuilder` for DQfD (registered in rlstore.agents.registry): it makes
    the replay tables, the learner, the adder and the actors (see rlstore.agents.online)."""

    def __init__(self, context: RunContext):
        config = context.config
        if not context.specs.action.discrete:
            raise AgentError("DQfD needs discrete actions; this environment's actions are continuous")
        if config.demo_ratio > 0 and not context.demos:
            raise AgentError("DQfD online mixes demonstrations into every batch: pass --demos NAME[@V] "
                             "(or --demo-ratio 0 for plain prioritized n-step double DQN)")
        try:
            self._split = replay.BatchSplit.of(config)
        except ValueError as error:
            raise AgentError(str(error)) from None
        self._context = context
        self._config = config
        self._demos = context.demos if config.demo_ratio > 0 else None
        self._num_demo_items = (preload_bound(context.store.manifest(self._demos), replay.layout(config), TRANSITIONS)
                                if self._demos else 0)

    # ---- replay process ----------------------------------------------------------------------

    def make_replay_tables(self) -> list[reverb.Table]:
        demo_schema = self._context.store.manifest(self._demos).schema if self._demos else None
        return replay.make_tables(self._config, self._context.specs, demo_schema, self._num_demo_items,
                                  self._context.frame_stack)

    def fill_replay(self, address: str) -> None:
        if self._demos:
            load_version(address, self._context.store, self._demos, replay.demo_layout(self._config, self._num_demo_items),
                         into={TRANSITIONS: replay.DEMO_TABLE})

    # ---- learner process ---------------------------------------------------------------------

    def make_learner(self, replay_address: str) -> OnlineDQfDLearner:
        config, context = self._config, self._context
        tf.random.set_seed(context.seed)
        statistics = compute_statistics(context.store, self._demos) if self._demos else None
        networks = DQfDBuilder().make_networks(context.specs, config, statistics)
        pretrain = config.pretrain_steps if self._demos else 0
        # β reaches 1 at the run's expected last update: each agent transition is sampled
        # samples_per_insert times, replay_rows at a time.
        anneal = pretrain + int(context.env_steps * config.samples_per_insert / self._split.replay_rows)
        return OnlineDQfDLearner(networks, config, replay_address,
                                 lambda batch_split: replay.sampled_batches(replay_address, batch_split),
                                 pretrain_steps=pretrain, anneal_updates=anneal)

    # ---- actor processes ---------------------------------------------------------------------

    def make_adder(self, replay_address: str, writer: WriteBack | None) -> Adder:
        """Each finished episode's n-step rows into the agent's table (and, with a writer, the store);
        on frame-stacked envs (`atari:`) one frame per step, in Reverb and in the store."""
        frame_stack = self._context.frame_stack
        return Adder(ReplayInserter(replay_address, replay.layout(self._config), frame_stack=frame_stack), writer,
                     frame_stack=frame_stack)

    def make_actor(self, index: int, adder: Adder) -> EpsilonGreedyActor:
        context = self._context
        networks = DQfDBuilder().make_networks(context.specs, self._config)
        return EpsilonGreedyActor(networks.online, context.specs, self._config.epsilon,
                                  seed=context.seed + ACTOR_SEED_STRIDE * (index + 1), adder=adder)
