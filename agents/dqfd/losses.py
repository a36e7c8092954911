"""DQfD's losses (Hester et al. 2018, section 3), as functions of Q-values and a batch of rows.

    J(Q) = J_DQ(Q) + λ1·J_n(Q) + λ2·J_E(Q) + λ3·J_L2(Q)

J_DQ and J_n are double-Q TD losses on the 1-step and n-step targets of the same row; J_E is the
large-margin supervised loss, counted on demonstration rows only (`is_demo`); J_L2 regularises
the online network's variables. Per-row terms are scaled by importance-sampling weights
(`weight`: all ones when sampling uniformly, as in batch mode) so prioritized replay plugs in
without touching the losses, and the 1-step TD error is returned for its priorities.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import tensorflow as tf

from rlstore.agents.dqfd.config import DQfDConfig
from rlstore.agents.dqfd.networks import DQfDNetworks

METRICS = ("loss", "td_loss", "n_step_td_loss", "margin_loss", "l2_loss", "demo_accuracy", "q_mean")


@dataclasses.dataclass(frozen=True)
class LossOutput:
    loss: tf.Tensor                 # scalar to minimise
    metrics: dict[str, tf.Tensor]   # scalars named in METRICS
    td_error: tf.Tensor             # [B] 1-step TD error: what prioritized replay's |δ| + ε is made of


def double_q_target(reward: tf.Tensor, discount: tf.Tensor, next_q_online: tf.Tensor,
                    next_q_target: tf.Tensor) -> tf.Tensor:
    """reward + discount · Q_target(s', argmax_a Q_online(s', a)) (van Hasselt et al. 2016).

    The online network picks the action and the target network values it, which curbs the
    over-estimation of max_a Q_target. `discount` already holds γ^m·Πd (rlstore's readers'
    convention): 0 after a terminal, non-zero through a time-limit cut, so a cut bootstraps.
    """
    best = tf.argmax(next_q_online, axis=-1, output_type=tf.int32)
    bootstrap = tf.gather(next_q_target, best, batch_dims=1)
    return tf.stop_gradient(reward + discount * bootstrap)


def margin_loss(q_values: tf.Tensor, demo_action: tf.Tensor, margin: float) -> tf.Tensor:
    """Per row: max_a [Q(s,a) + l(a_E,a)] − Q(s,a_E), with l = margin for a ≠ a_E and 0 for a_E.

    Zero exactly when the demonstrated action's value beats every other by at least `margin`,
    which pushes never-demonstrated actions down instead of leaving them at their (arbitrary,
    often over-estimated) initial values: the part of DQfD that makes offline Q-learning work.
    """
    one_hot = tf.one_hot(tf.cast(demo_action, tf.int32), tf.shape(q_values)[-1], dtype=q_values.dtype)
    return tf.reduce_max(q_values + margin * (1.0 - one_hot), axis=-1) - tf.reduce_sum(q_values * one_hot, axis=-1)


def huber(error: tf.Tensor, delta: float) -> tf.Tensor:
    """Quadratic within ±delta, linear outside: DQN's TD loss, robust to large early errors."""
    absolute = tf.abs(error)
    quadratic = tf.minimum(absolute, delta)
    return 0.5 * tf.square(quadratic) + delta * (absolute - quadratic)


def l2_penalty(variables: Sequence[tf.Variable]) -> tf.Tensor:
    """Sum of squares of the weights and biases (the paper regularises both)."""
    return tf.add_n([tf.reduce_sum(tf.square(v)) for v in variables])


def dqfd_loss(networks: DQfDNetworks, batch: Mapping[str, Any], config: DQfDConfig) -> LossOutput:
    """J(Q) on one batch of rows (fields as in rlstore.agents.dqfd.data.ROW_FIELDS).

    Per-row terms are averaged over the whole batch (non-demonstration rows contribute 0 to J_E),
    so a demonstration's margin term has the same scale whatever the batch's demo share.
    """
    q_values = networks.online(batch["observation"])
    action = tf.cast(batch["action"], tf.int32)
    q_taken = tf.gather(q_values, action, batch_dims=1)

    def td_error(prefix: str) -> tf.Tensor:
        next_observation = batch[prefix + "next_observation"]
        target = double_q_target(batch[prefix + "reward"], batch[prefix + "discount"],
                                 networks.online(next_observation), networks.target(next_observation))
        return target - q_taken

    td_1, td_n = td_error(""), td_error("n_step_")
    is_demo = tf.cast(batch["is_demo"], q_values.dtype)
    weight = tf.cast(batch["weight"], q_values.dtype)
    margin = margin_loss(q_values, action, config.margin) * is_demo
    per_row = (huber(td_1, config.huber_delta) + config.n_step_weight * huber(td_n, config.huber_delta)
               + config.supervised_weight * margin)
    l2 = l2_penalty(networks.online.trainable_variables)
    loss = tf.reduce_mean(weight * per_row) + config.l2_weight * l2
    demos = tf.maximum(tf.reduce_sum(is_demo), 1.0)
    correct = tf.cast(tf.equal(tf.argmax(q_values, axis=-1, output_type=tf.int32), action), q_values.dtype)
    metrics = {
        "loss": loss,
        "td_loss": tf.reduce_mean(huber(td_1, config.huber_delta)),
        "n_step_td_loss": tf.reduce_mean(huber(td_n, config.huber_delta)),
        "margin_loss": tf.reduce_sum(margin) / demos,
        "l2_loss": l2,
        "demo_accuracy": tf.reduce_sum(correct * is_demo) / demos,
        "q_mean": tf.reduce_mean(q_taken),
    }
    return LossOutput(loss, metrics, td_1)
