"""R2D2's recurrent Q-network and the online/target pair the learner needs.

Encoder (shared with the other agents, so dict/image observations and standardisation work the
same: images through a conv torso) → MLP torso → Sonnet LSTM core → plain or dueling head. As
in R2D2, the LSTM also reads the previous action (one-hot) and the previous reward (the reward
that came with this observation; both 0 on an episode's first step): on a memory task the agent
can then tell what it did and whether it paid off without having to infer it from the view. The recurrent state is a plain
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
                 lstm_size: int, dueling: bool = True, normalize: bool = False, prev_action_reward: bool = True,
                 image_codes: int = 0, head_sizes: Sequence[int] = (), name: str = "recurrent_q_network"):
        super().__init__(name=name)
        self.encoder = ObservationEncoder(observation_specs, normalize, image_codes)
        self._num_actions = num_actions
        self.prev_action_reward = prev_action_reward
        self._torso = snt.nets.MLP(list(hidden_sizes), activate_final=True, name="torso")
        self._core = snt.LSTM(lstm_size, name="lstm")
        self._head = QHead(num_actions, dueling, hidden_sizes=head_sizes)

    def initial_state(self, batch_size: int | tf.Tensor) -> State:
        """The zero state every episode starts from."""
        state = self._core.initial_state(batch_size)
        return state.hidden, state.cell

    def __call__(self, observation: Any, prev_action: tf.Tensor, prev_reward: tf.Tensor,
                 state: State) -> tuple[tf.Tensor, State]:
        """One step for a batch: observations, the previous actions [batch] and rewards [batch]."""
        features = self._core_inputs(self._torso(self.encoder(observation)), prev_action, prev_reward)
        output, next_state = self._core(features, snt.LSTMState(*state))
        return self._head(output), (next_state.hidden, next_state.cell)

    def unroll(self, observations: Any, prev_actions: tf.Tensor, prev_rewards: tf.Tensor,
               state: State) -> tuple[tf.Tensor, State]:
        """Q-values [batch, time, num_actions] of a batch of sequences started from `state`
        (previous actions and rewards [batch, time], as `previous_actions_and_rewards` makes them)."""
        first = tf.nest.flatten(observations)[0]
        batch, time = tf.shape(first)[0], tf.shape(first)[1]
        merged = tf.nest.map_structure(lambda x: tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], 0)), observations)
        features = self._core_inputs(self._torso(self.encoder(merged)), tf.reshape(prev_actions, [-1]),
                                     tf.reshape(prev_rewards, [-1]))
        features = tf.transpose(tf.reshape(features, [batch, time, features.shape[-1]]), [1, 0, 2])
        outputs, final = snt.dynamic_unroll(self._core, features, snt.LSTMState(*state))
        q_values = self._head(tf.reshape(tf.transpose(outputs, [1, 0, 2]), [batch * time, outputs.shape[-1]]))
        return tf.reshape(q_values, [batch, time, -1]), (final.hidden, final.cell)


    def _core_inputs(self, features: tf.Tensor, prev_action: tf.Tensor, prev_reward: tf.Tensor) -> tf.Tensor:
        if not self.prev_action_reward:
            return features
        action = tf.one_hot(tf.cast(prev_action, tf.int32), self._num_actions)
        return tf.concat([features, action, tf.cast(prev_reward, tf.float32)[:, None]], axis=-1)


def previous_actions_and_rewards(action: tf.Tensor, reward: tf.Tensor, is_first: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """For [batch, time] sequence fields in RLDS's SAR alignment (step t holds a_t and r_t): the
    LSTM's inputs a_{t-1} and r_{t-1} at every step, 0 on an episode's first step. A window that
    starts mid-episode has no step before its first: that one step gets 0 too, like the zero
    recurrent state demonstration windows start from (burn-in is there to wash both out)."""
    def shifted(x: tf.Tensor) -> tf.Tensor:
        previous = tf.concat([tf.zeros_like(x[:, :1]), x[:, :-1]], axis=1)
        return tf.where(tf.cast(is_first, tf.bool), tf.zeros_like(previous), previous)

    return shifted(tf.cast(action, tf.int32)), shifted(tf.cast(reward, tf.float32))


class R2D3Networks(OnlineAndTarget):
    """The online recurrent Q-network (learned, acted with, exported) and its periodically synced target."""

    def __init__(self, online: RecurrentQNetwork, target: RecurrentQNetwork, name: str = "r2d3_networks"):
        super().__init__(online, target, name=name)
