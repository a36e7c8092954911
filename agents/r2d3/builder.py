"""Wires R2D3: the recurrent online/target Q-networks, batch-mode sequences from one store version,
the learner, the greedy recurrent policy and its actor. The online mode (rlstore.agents.r2d3.online)
builds on the same pieces with Reverb in between."""
from __future__ import annotations

from typing import Any

import tensorflow as tf

from rlstore.agents.actors import RecurrentActor
from rlstore.agents.errors import AgentError
from rlstore.agents.r2d3.acting import RecurrentPolicy
from rlstore.agents.r2d3.config import R2D3Config
from rlstore.agents.r2d3.learning import R2D3Learner
from rlstore.agents.r2d3.networks import R2D3Networks, RecurrentQNetwork
from rlstore.agents.specs import DataSpecs
from rlstore.agents.statistics import DataStatistics
from rlstore import reading
from rlstore.store import Store


class R2D3Builder:
    """The `AgentBuilder` of R2D3 (see rlstore.agents.registry). Q-learning needs discrete actions."""

    def make_networks(self, specs: DataSpecs, config: R2D3Config,
                      statistics: DataStatistics | None = None) -> R2D3Networks:
        if not specs.action.discrete:
            raise AgentError("R2D3 needs discrete actions; this dataset's actions are continuous (try bc)")
        online, target = (RecurrentQNetwork(specs.observation, specs.action.num_values, config.hidden_sizes,
                                            config.lstm_size, config.dueling, config.normalize_observations,
                                            config.prev_action_reward, config.image_codes, config.head_sizes,
                                            name=name)
                          for name in ("online", "target"))
        networks = R2D3Networks(online, target)
        for network in (online, target):
            network(specs.zeros_observation(), tf.zeros([1], tf.int32), tf.zeros([1]), network.initial_state(1))
        if statistics is not None:
            online.encoder.set_statistics(statistics.observation_mean, statistics.observation_std)
        networks.update_target()
        return networks

    def make_dataset(self, store: Store, ref: str, specs: DataSpecs, config: R2D3Config, seed: int) -> tf.data.Dataset:
        """Batch mode: every sequence is a demonstration (`is_demo`) starting from the zero state."""
        return reading.sequences(store, ref, length=config.sequence_length, period=config.period,
                                 burn_in=config.burn_in, batch_size=config.batch_size, seed=seed,
                                 is_demo=True).prefetch(config.prefetch)

    def make_learner(self, networks: R2D3Networks, dataset: tf.data.Dataset, specs: DataSpecs,
                     config: R2D3Config) -> R2D3Learner:
        return R2D3Learner(networks, dataset, config)

    def make_policy(self, networks: R2D3Networks, specs: DataSpecs, config: R2D3Config) -> RecurrentPolicy:
        return RecurrentPolicy(networks.online, specs.action)

    def make_actor(self, policy: RecurrentPolicy, specs: DataSpecs, env: Any) -> RecurrentActor:
        return RecurrentActor(policy, specs)
