"""DQfD's Q-network and the online/target pair the learner needs.

The Q-network reuses the shared observation encoder (so dict and image observations and the
dataset's standardisation work as for BC), then an MLP torso and a plain or dueling head. The
pair is one Sonnet module so a checkpoint's "network" holds both: resuming a run restores the
target network exactly rather than re-copying it from the online one mid-period.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import sonnet as snt
import tensorflow as tf

from agents.networks import ObservationEncoder
from agents.specs import ArraySpec


class QNetwork(snt.Module):
    """Encoder → MLP torso → Q-values [B, num_actions]; dueling: V(s) + A(s,a) − mean_a A(s,a)
    (Wang et al. 2016, the head DQfD used)."""

    def __init__(self, observation_specs: Mapping[str, ArraySpec], num_actions: int, hidden_sizes: Sequence[int],
                 dueling: bool = True, normalize: bool = False, name: str = "q_network"):
        super().__init__(name=name)
        self.encoder = ObservationEncoder(observation_specs, normalize)
        self._torso = snt.nets.MLP(list(hidden_sizes), activate_final=True, name="torso")
        self._advantage = snt.Linear(num_actions, name="advantage" if dueling else "q_values")
        self._value = snt.Linear(1, name="value") if dueling else None

    def __call__(self, observation: Any) -> tf.Tensor:
        features = self._torso(self.encoder(observation))
        advantage = self._advantage(features)
        if self._value is None:
            return advantage
        return self._value(features) + advantage - tf.reduce_mean(advantage, axis=-1, keepdims=True)


class DQfDNetworks(snt.Module):
    """The online Q-network (learned, acted with, exported) and its periodically synced target."""

    def __init__(self, online: QNetwork, target: QNetwork, name: str = "dqfd_networks"):
        super().__init__(name=name)
        self.online = online
        self.target = target

    def update_target(self) -> None:
        """Copies every online variable (the standardisation statistics too) into the target network."""
        for source, destination in zip(self.online.variables, self.target.variables):
            destination.assign(source)
