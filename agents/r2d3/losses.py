"""R2D2's sequence loss (Kapturowski et al. 2019, section 2-3), as functions of one batch of sequences.

A batch holds [batch, burn_in + length, ...] step fields laid out as `rlstore.reading.sequences`
and the `sequences` Reverb table deliver them (RLDS's SAR alignment, `mask` 1 on real steps and
0 on the zero padding after an episode's last step), the recurrent state the item starts from
(`core_state`; zeros when absent) and optional per-sequence importance weights (`weight`).

The LSTM reads each step's previous action and reward (`networks.previous_actions_and_rewards`:
the window's own fields shifted by one step). Both networks unroll the first `burn_in` steps
from the stored state only to refresh it: the
state is cut from the gradient (`tf.stop_gradient`) and those steps have no TD error, so their
rewards, actions and discounts cannot touch the loss. On the remaining `length` steps, step t
gets the n-step double-Q target under the value rescaling h:

    y_t = h( R_t + Γ_t · h⁻¹( Q_target(s_b, argmax_a Q_online(s_b, a)) ) )

with R_t and Γ_t the n-step reward sum and discount product of `rlstore.reading.transforms`
(γ^m·Πd, 0 after a terminal, non-zero through a time-limit cut) and b = min(t + n, e), e the
sequence's last real step: n-step windows stop at the episode's end, and at the sequence's end
they bootstrap early. Steps t ≥ e (the final observation, padding, and the window's last step,
which has no successor in the window) carry no loss.

With `supervised_weight` > 0, demonstration sequences (`is_demo`) also get DQfD's large-margin
loss J_E (Hester et al. 2018) on the same valid steps, averaged per sequence like δ². R2D3 has
no such term: with billions of steps its TD loss alone finds the demonstrated route. Within tens
of thousands, the margin is what makes the demonstrated action the greedy one from the first
updates (the TD loss leaves never-demonstrated actions at whatever values they start with), and
on a memory task the action after the cue is gone can only be imitated by remembering the cue.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import tensorflow as tf

from rlstore.agents.dqfd.losses import margin_loss
from rlstore.agents.r2d3.config import R2D3Config
from rlstore.agents.r2d3.networks import R2D3Networks, State, previous_actions_and_rewards

METRICS = ("loss", "td_abs_mean", "q_mean", "priority_mean", "demo_share", "margin_loss", "demo_accuracy")


@dataclasses.dataclass(frozen=True)
class LossOutput:
    loss: tf.Tensor                 # scalar to minimise
    metrics: dict[str, tf.Tensor]   # scalars named in METRICS
    priorities: tf.Tensor           # [batch] η·max|δ| + (1-η)·mean|δ| per sequence, for prioritized replay


def value_rescale(x: tf.Tensor, epsilon: float) -> tf.Tensor:
    """h(x) = sign(x)(sqrt(|x| + 1) - 1) + εx: squashes large returns so one network spans games
    whose reward scales differ by orders of magnitude, without clipping rewards."""
    return tf.sign(x) * (tf.sqrt(tf.abs(x) + 1.0) - 1.0) + epsilon * x


def inverse_value_rescale(x: tf.Tensor, epsilon: float) -> tf.Tensor:
    """h⁻¹(x) = sign(x)(((sqrt(1 + 4ε(|x| + 1 + ε)) - 1) / 2ε)² - 1): Q-values live in h-space,
    so bootstrapped values are mapped back to returns before rewards are added."""
    root = (tf.sqrt(1.0 + 4.0 * epsilon * (tf.abs(x) + 1.0 + epsilon)) - 1.0) / (2.0 * epsilon)
    return tf.sign(x) * (tf.square(root) - 1.0)


def n_step_returns(reward: tf.Tensor, discount: tf.Tensor, end: tf.Tensor, n_step: int,
                   gamma: float) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(R_t, Γ_t, b_t) for every step of [batch, time] rewards and discounts, `end` [batch] the
    last real step of each row: R_t = Σ_{k<m} (Π_{j<k} γ d_{t+j}) r_{t+k}, Γ_t = Π_{k<m} γ d_{t+k},
    b_t = t + m, with m = min(n, end - t) (0 for t ≥ end)."""
    time = tf.shape(reward)[1]
    t = tf.range(time)[None, :]
    end = end[:, None]
    total = tf.zeros_like(reward)
    scale = tf.ones_like(reward)
    for k in range(n_step):
        index = tf.broadcast_to(tf.minimum(t + k, time - 1), tf.shape(reward))
        active = t + k < end  # step t+k has an action and a successor in the window
        total += tf.where(active, scale * tf.gather(reward, index, batch_dims=1), 0.0)
        scale = tf.where(active, scale * gamma * tf.gather(discount, index, batch_dims=1), scale)
    bootstrap = tf.maximum(tf.minimum(t + n_step, end), 0)
    return total, scale, tf.broadcast_to(bootstrap, tf.shape(reward))


def sequence_priorities(td_abs: tf.Tensor, valid: tf.Tensor, eta: float) -> tf.Tensor:
    """η·max_t |δ_t| + (1-η)·mean_t |δ_t| over each row's valid steps (0 for a row with none): the
    max keeps a single surprising step from being averaged away over a long sequence."""
    count = tf.reduce_sum(valid, axis=1)
    masked = td_abs * valid
    return eta * tf.reduce_max(masked, axis=1) + (1.0 - eta) * tf.reduce_sum(masked, axis=1) / tf.maximum(count, 1.0)


def supervised_loss(q_values: tf.Tensor, demo_action: tf.Tensor, config: R2D3Config) -> tf.Tensor:
    """Per step: DQfD's large margin (zero once the demonstrated action leads by `margin`), or
    cross-entropy of softmax(Q) against it, which never stops pulling the demonstrated action
    up until the others are far behind."""
    if config.supervised_loss == "margin":
        return margin_loss(q_values, demo_action, config.margin)
    return tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(demo_action, tf.int32), q_values)


def burn_in(networks: R2D3Networks, observation: Any, prev_action: tf.Tensor, prev_reward: tf.Tensor, state: State,
            steps: int) -> tuple[State, State]:
    """The online and target networks' states after `steps` steps from `state`, cut from the gradient."""
    if steps == 0:
        return state, state
    prefix = tf.nest.map_structure(lambda x: x[:, :steps], (observation, prev_action, prev_reward))
    _, online = networks.online.unroll(*prefix, state)
    _, target = networks.target.unroll(*prefix, state)
    return tf.nest.map_structure(tf.stop_gradient, online), tf.nest.map_structure(tf.stop_gradient, target)


def r2d3_loss(networks: R2D3Networks, batch: Mapping[str, Any], config: R2D3Config) -> LossOutput:
    """The importance-weighted mean over sequences of 0.5·mean_t δ_t² (+ λ·mean_t J_E on
    demonstration sequences) on their valid steps."""
    observation = batch["observation"]
    size = tf.shape(batch["mask"])[0]
    state = (tuple(batch["core_state"]) if "core_state" in batch else networks.online.initial_state(size))
    prev_action, prev_reward = previous_actions_and_rewards(batch["action"], batch["reward"], batch["is_first"])
    online_state, target_state = burn_in(networks, observation, prev_action, prev_reward, state, config.burn_in)

    def learned(x: tf.Tensor) -> tf.Tensor:
        return x[:, config.burn_in:]

    inputs = tf.nest.map_structure(learned, (observation, prev_action, prev_reward))
    q_online, _ = networks.online.unroll(*inputs, online_state)
    q_target, _ = networks.target.unroll(*inputs, target_state)
    mask = learned(batch["mask"])
    reward = tf.cast(learned(batch["reward"]), tf.float32)
    discount = tf.cast(learned(batch["discount"]), tf.float32)
    end = tf.cast(tf.reduce_sum(mask, axis=1), tf.int32) - 1
    returns, scale, bootstrap = n_step_returns(reward, discount, end, config.n_step, config.gamma)

    greedy = tf.argmax(tf.gather(tf.stop_gradient(q_online), bootstrap, batch_dims=1), axis=-1, output_type=tf.int32)
    next_value = tf.gather(tf.gather(q_target, bootstrap, batch_dims=1), greedy, batch_dims=2)
    eps = config.rescaling_epsilon
    target = tf.stop_gradient(value_rescale(returns + scale * inverse_value_rescale(next_value, eps), eps))
    q_taken = tf.gather(q_online, tf.cast(learned(batch["action"]), tf.int32), batch_dims=2)
    valid = tf.cast(tf.range(tf.shape(mask)[1])[None, :] < end[:, None], tf.float32)
    td = (target - q_taken) * valid

    count = tf.maximum(tf.reduce_sum(valid, axis=1), 1.0)
    is_demo = tf.cast(batch["is_demo"], tf.float32) if "is_demo" in batch else tf.zeros_like(count)
    demo_steps = valid * is_demo[:, None]
    margin = tf.reduce_sum(supervised_loss(q_online, learned(batch["action"]), config) * demo_steps, axis=1) / count
    per_sequence = 0.5 * tf.reduce_sum(tf.square(td), axis=1) / count + config.supervised_weight * margin
    weight = tf.cast(batch["weight"], tf.float32) if "weight" in batch else tf.ones_like(per_sequence)
    loss = tf.reduce_mean(weight * per_sequence)
    priorities = sequence_priorities(tf.abs(td), valid, config.priority_eta)
    steps = tf.maximum(tf.reduce_sum(valid), 1.0)
    demo_count = tf.maximum(tf.reduce_sum(demo_steps), 1.0)
    greedy_is_demo = tf.cast(tf.equal(tf.argmax(q_online, axis=-1, output_type=tf.int32),
                                      tf.cast(learned(batch["action"]), tf.int32)), tf.float32)
    metrics = {
        "loss": loss,
        "td_abs_mean": tf.reduce_sum(tf.abs(td)) / steps,
        "q_mean": tf.reduce_sum(q_taken * valid) / steps,
        "priority_mean": tf.reduce_mean(priorities),
        "demo_share": tf.reduce_mean(is_demo),
        "margin_loss": tf.reduce_sum(margin * is_demo) / tf.maximum(tf.reduce_sum(is_demo), 1.0),
        "demo_accuracy": tf.reduce_sum(greedy_is_demo * demo_steps) / demo_count,
    }
    return LossOutput(loss, metrics, priorities)
