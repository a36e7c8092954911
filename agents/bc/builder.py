"""Wires BC together: the store version as input, the policy network, learner, policy and actor."""
from __future__ import annotations

from typing import Any

import tensorflow as tf

from rlstore.agents.actors import FeedForwardActor
from rlstore.agents.bc.acting import BCPolicy
from rlstore.agents.bc.config import BCConfig
from rlstore.agents.bc.learning import BCLearner
from rlstore.agents.networks import PolicyNetwork
from rlstore.agents.specs import DataSpecs
from rlstore.agents.statistics import DataStatistics
from rlstore import reading
from rlstore.store import Store

STEP_FIELDS = ("observation", "action", "is_last")


class BCBuilder:
    """The `AgentBuilder` of BC (see rlstore.agents.registry)."""

    def make_networks(self, specs: DataSpecs, config: BCConfig,
                      statistics: DataStatistics | None = None) -> PolicyNetwork:
        network = PolicyNetwork(specs.observation, specs.action, config.hidden_sizes,
                                gaussian=config.continuous_loss == "gaussian_nll",
                                normalize=config.normalize_observations)
        network(specs.zeros_observation())
        if statistics is not None:
            network.encoder.set_statistics(statistics.observation_mean, statistics.observation_std)
        return network

    def make_dataset(self, store: Store, ref: str, specs: DataSpecs, config: BCConfig, seed: int) -> tf.data.Dataset:
        """Shuffled batches of the fields BC reads, prefetched so the learner never waits on input."""
        batches = reading.steps(store, ref, batch_size=config.batch_size, shuffle=True, seed=seed, repeat=True)
        batches = batches.map(lambda batch: {key: batch[key] for key in STEP_FIELDS})
        return batches.prefetch(config.prefetch)

    def make_learner(self, networks: PolicyNetwork, dataset: tf.data.Dataset, specs: DataSpecs,
                     config: BCConfig) -> BCLearner:
        return BCLearner(networks, dataset, specs.action, config)

    def make_policy(self, networks: PolicyNetwork, specs: DataSpecs, config: BCConfig) -> BCPolicy:
        return BCPolicy(networks, specs.action)

    def make_actor(self, policy: BCPolicy, specs: DataSpecs, env: Any) -> FeedForwardActor:
        return FeedForwardActor(policy, specs, env.action_spec())
