"""The rows DQfD's learner reads: each transition with BOTH its 1-step and its n-step target.

Two `rlstore.reading.transitions` readers (n=1 and n=n_step) with the same seed walk the same
episodes in the same order and permute each chunk's rows identically (one row per step with an
action either way), so zipping them pairs every 1-step row with the n-step row of the same step.
All n-step arithmetic (terminal vs time-limit cut, γ^m inside `discount`) stays in the reader.
The pairing is asserted on every batch, so a change in the readers cannot silently misalign them.
"""
from __future__ import annotations

from typing import Any

import tensorflow as tf

from rlstore import reading
from rlstore.store import Store

ROW_FIELDS = ("observation", "action", "reward", "discount", "next_observation",
              "n_step_reward", "n_step_discount", "n_step_next_observation", "is_demo", "weight")


def demonstration_batches(store: Store, ref: str, *, n_step: int, gamma: float, batch_size: int,
                          seed: int) -> tf.data.Dataset:
    """Endless shuffled batches of ROW_FIELDS from one store version, every row a demonstration
    (`is_demo` True) with importance weight 1 (uniform sampling needs no correction)."""
    def read(n: int) -> tf.data.Dataset:
        return reading.transitions(store, ref, n_step=n, gamma=gamma, batch_size=batch_size, seed=seed, repeat=True)

    return tf.data.Dataset.zip((read(1), read(n_step))).map(_join)


def _join(one: dict[str, Any], many: dict[str, Any]) -> dict[str, Any]:
    for a, b in zip(tf.nest.flatten((one["observation"], one["action"])),
                    tf.nest.flatten((many["observation"], many["action"]))):
        tf.debugging.assert_equal(a, b, message="1-step and n-step rows are misaligned")
    size = tf.shape(one["action"])[0]
    return {**one, "n_step_reward": many["reward"], "n_step_discount": many["discount"],
            "n_step_next_observation": many["next_observation"],
            "is_demo": tf.ones([size], tf.bool), "weight": tf.ones([size], tf.float32)}
