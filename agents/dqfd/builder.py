"""Wires DQfD's offline (pre-training) phase: demonstrations from one store version, the
online/target Q-networks, the learner, the greedy policy and its actor."""
from __future__ import annotations

from typing import Any

import tensorflow as tf

from rlstore.agents.actors import FeedForwardActor
from rlstore.agents.dqfd.acting import GreedyPolicy
from rlstore.agents.dqfd.config import DQfDConfig
from rlstore.agents.dqfd.data import demonstration_batches
from rlstore.agents.dqfd.learning import DQfDLearner
from rlstore.agents.dqfd.networks import DQfDNetworks, QNetwork
from rlstore.agents.errors import AgentError
from rlstore.agents.specs import DataSpecs
from rlstore.agents.statistics import DataStatistics
from rlstore.store import Store


class DQfDBuilder:
    """The `AgentBuilder` of DQfD (see rlstore.agents.registry). Q-learning needs discrete actions."""

    def make_networks(self, specs: DataSpecs, config: DQfDConfig,
                      statistics: DataStatistics | None = None) -> DQfDNetworks:
        if not specs.action.discrete:
            raise AgentError("DQfD needs discrete actions; this dataset's actions are continuous (try bc)")
        online, target = (QNetwork(specs.observation, specs.action.num_values, config.hidden_sizes, config.dueling,
                                   config.normalize_observations, name=name) for name in ("online", "target"))
        networks = DQfDNetworks(online, target)
        for network in (online, target):
            network(specs.zeros_observation())
        if statistics is not None:
            online.encoder.set_statistics(statistics.observation_mean, statistics.observation_std)
        networks.update_target()
        return networks

    def make_dataset(self, store: Store, ref: str, specs: DataSpecs, config: DQfDConfig, seed: int) -> tf.data.Dataset:
        """Demonstration rows with 1-step and n-step targets, prefetched so the learner never waits."""
        batches = demonstration_batches(store, ref, n_step=config.n_step, gamma=config.gamma,
                                        batch_size=config.batch_size, seed=seed)
        return batches.prefetch(config.prefetch)

    def make_learner(self, networks: DQfDNetworks, dataset: tf.data.Dataset, specs: DataSpecs,
                     config: DQfDConfig) -> DQfDLearner:
        return DQfDLearner(networks, dataset, config)

    def make_policy(self, networks: DQfDNetworks, specs: DataSpecs, config: DQfDConfig) -> GreedyPolicy:
        return GreedyPolicy(networks.online, specs.action)

    def make_actor(self, policy: GreedyPolicy, specs: DataSpecs, env: Any) -> FeedForwardActor:
        return FeedForwardActor(policy, specs, env.action_spec())
