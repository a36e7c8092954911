"""DQfD's Q-network and the online/target pair the learner needs.

The Q-network reuses the shared observation encoder (so dict and image observations and the
dataset's standardisation work as for BC), then an MLP torso and the shared plain or dueling
head; the learner holds it with its target copy (rlstore.agents.networks.OnlineAndTarget).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import sonnet as snt
import tensorflow as tf

from rlstore.agents.networks import ObservationEncoder, OnlineAndTarget, QHead
from rlstore.agents.specs import ArraySpec


class QNetwork(snt.Module):
    """Encoder → MLP torso → Q-values [B, num_actions]; dueling: V(s) + A(s,a) − mean_a A(s,a)
    (Wang et al. 2016, the head DQfD used)."""

    def __init__(self, observation_specs: Mapping[str, ArraySpec], num_actions: int, hidden_sizes: Sequence[int],
                 dueling: bool = True, normalize: bool = False, name: str = "q_network"):
        super().__init__(name=name)
        self.encoder = ObservationEncoder(observation_specs, normalize)
        self._torso = snt.nets.MLP(list(hidden_sizes), activate_final=True, name="torso")
        self._head = QHead(num_actions, dueling)

    def __call__(self, observation: Any) -> tf.Tensor:
        return self._head(self._torso(self.encoder(observation)))


class DQfDNetworks(OnlineAndTarget):
    """The online Q-network (learned, acted with, exported) and its periodically synced target."""

    def __init__(self, online: QNetwork, target: QNetwork, name: str = "dqfd_networks"):
        super().__init__(online, target, name=name)
