"""Prioritized replay's per-row bookkeeping, for agents that sample Reverb tables by priority.

A sampled item comes with its `key` (what a priority update names), its sampling `probability`
and its table's `table_size`. Importance-sampling weights w = (N·P(i))^-β undo the bias that
sampling by priority puts into the loss (Schaul et al. 2016); they are normalised by the
batch's largest, so they only ever scale an update down. New priorities go back to the table
each row came from, in the graph, with Reverb's TF op, so Python never sits between updates.
"""
from __future__ import annotations

from typing import Any, Mapping

import reverb
import tensorflow as tf

from rlstore.reading.mixing import SOURCE_FIELD

SAMPLE_TIMEOUT_MS = 1000  # a sampling dataset ends after waiting this long, so a learner can see a stop request


def sample_info(sample: reverb.ReplaySample) -> dict[str, tf.Tensor]:
    """The per-row columns a prioritized learner needs beside the item: `key`, `probability`, `table_size`."""
    return {"key": sample.info.key, "probability": tf.cast(sample.info.probability, tf.float32),
            "table_size": tf.cast(sample.info.table_size, tf.float32)}


def without_text(observation: Any) -> Any:
    """A sampled observation without its text keys (MiniGrid's mission): demonstration tables keep
    what their version stores, actors record no text, and networks read none, so rows of both
    tables concatenate once text is dropped."""
    if not isinstance(observation, Mapping):
        return observation
    return {key: without_text(value) for key, value in observation.items()
            if isinstance(value, Mapping) or value.dtype != tf.string}


def importance_weights(probability: tf.Tensor, table_size: tf.Tensor, exponent: float | tf.Tensor) -> tf.Tensor:
    """(N·P(i))^-β per row, divided by the batch's largest (each row with its own table's N and P)."""
    weight = tf.pow(table_size * probability, -exponent)
    return weight / tf.reduce_max(weight)


class PriorityWriter:
    """Writes new priorities back to the table each row came from: `tables` maps a row's
    `source` (as `rlstore.reading.mix` numbers them) to its table. In-graph."""

    def __init__(self, address: str, tables: Mapping[int, str]):
        self._client = reverb.TFClient(address)
        self._tables = dict(tables)

    def __call__(self, batch: Mapping[str, Any], priorities: tf.Tensor) -> None:
        for source, table in self._tables.items():
            chosen = tf.equal(batch[SOURCE_FIELD], source)
            self._client.update_priorities(table, tf.boolean_mask(batch["key"], chosen),
                                           tf.cast(tf.boolean_mask(priorities, chosen), tf.float64))
