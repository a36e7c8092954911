"""R2D2's recurrent Q-network and the online/target pair the learner needs.

Encoder (shared with the other agents, so dict/image observations and standardisation work the
same) → MLP torso → Sonnet LSTM core → plain or dueling head. The recurrent state is a plain
tuple `(h, c)` of float32 [batch, lstm_size] tensors: the form replay items store
(`core_state`), actors carry between steps and an exported SavedModel takes and returns.
Sequences are batch-major ([batch, time, ...], as the readers and Reverb deliver them); `unroll`
runs the feed-forward parts on all steps at once and only the LSTM step by step.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import sonnet as snt
import tensorflow as tf

from rlstore.agents.networks import ObservationEncoder, OnlineAndTarget, QHead
from rlstore.agents.specs import ArraySpec

State = tuple[tf.Tensor, tf.Tensor]


class RecurrentQNetwork(snt.Module):
    """Q-values [batch, num_actions] from one step's observations and the LSTM state."""

    def __init__(self, observation_specs: Mapping[str, ArraySpec], num_actions: int, hidden_sizes: Sequence[int],
                 lstm_size: int, dueling: bool = True, normalize: bool = False, name: str = "recurrent_q_network"):
        super().__init__(name=name)
        self.encoder = ObservationEncoder(observation_specs, normalize)
        self._torso = snt.nets.MLP(list(hidden_sizes), activate_final=True, name="torso")
        self._core = snt.LSTM(lstm_size, name="lstm")
        self._head = QHead(num_actions, dueling)

    def initial_state(self, batch_size: int | tf.Tensor) -> State:
        """The zero state every episode starts from."""
        state = self._core.initial_state(batch_size)
        return state.hidden, state.cell

    def __call__(self, observation: Any, state: State) -> tuple[tf.Tensor, State]:
        features = self._torso(self.encoder(observation))
        output, next_state = self._core(features, snt.LSTMState(*state))
        return self._head(output), (next_state.hidden, next_state.cell)

    def unroll(self, observations: Any, state: State) -> tuple[tf.Tensor, State]:
        """Q-values [batch, time, num_actions] of a batch of sequences started from `state`."""
        first = tf.nest.flatten(observations)[0]
        batch, time = tf.shape(first)[0], tf.shape(first)[1]
        merged = tf.nest.map_structure(lambda x: tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], 0)), observations)
        features = self._torso(self.encoder(merged))
        features = tf.transpose(tf.reshape(features, [batch, time, features.shape[-1]]), [1, 0, 2])
        outputs, final = snt.dynamic_unroll(self._core, features, snt.LSTMState(*state))
        q_values = self._head(tf.reshape(tf.transpose(outputs, [1, 0, 2]), [batch * time, outputs.shape[-1]]))
        return tf.reshape(q_values, [batch, time, -1]), (final.hidden, final.cell)


class R2D3Networks(OnlineAndTarget):
    """The online recurrent Q-network (learned, acted with, exported) and its periodically synced target."""

    def __init__(self, online: RecurrentQNetwork, target: RecurrentQNetwork, name: str = "r2d3_networks"):
        super().__init__(online, target, name=name)
