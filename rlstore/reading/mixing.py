"""Mixing several row sources (demonstrations, online replay, ...) into batches at set ratios.

DQfD and R2D3 train on batches that hold a fixed share of demonstration data. Sampling every
row at random (`tf.data.Dataset.sample_from_datasets`) would cost one tf.data element per row
and make each batch's share noisy, so instead every batch is assembled from exact row counts:
a smooth weighted round robin over rows decides, for a cycle of 64 batches, how many rows
each source contributes to each batch (so the share served is exact to within a row per
cycle), each source is cut to those counts with `Dataset.rebatch`, and the parts are
concatenated and shuffled with a seeded stateless permutation. A source whose share of a
batch is below one row contributes a row every few batches.

What was actually served is counted as batches leave the pipeline, in a variable, and
`Mix.achieved()` / `Mix.summary()` report it for the run's metadata.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterator, Mapping

import numpy as np

import tensorflow as tf

from rlstore.names import DatasetRef
from rlstore.reading.records import AUTOTUNE
from rlstore.reading.readers import transitions
from rlstore.reading.transforms import shuffle_rows
from rlstore.store import Store

SOURCE_FIELD = "source"


def row_schedule(weights: list[float], batch_size: int, cycle: int = 64) -> np.ndarray:
    """[cycle, num_sources] rows per source per batch, each row summing to `batch_size`.

    Smooth weighted round robin: row m goes to the source furthest ahead in credit (its share
    accrued so far minus rows given), so within the cycle every source stays within a row of
    `share * rows`, and the cycle as a whole is as close to the shares as whole rows allow.
    """
    shares = np.asarray(weights, np.float64) / np.sum(weights)
    credit = np.zeros(len(shares))
    owner = np.empty(cycle * batch_size, np.int64)
    for row in range(owner.size):
        credit += shares
        owner[row] = int(np.argmax(credit))
        credit[owner[row]] -= 1.0
    return np.stack([np.bincount(batch, minlength=len(shares)) for batch in owner.reshape(cycle, batch_size)])


class Mix:
    """Mixed batches (dicts with an int32 `source` index per row) and the ratio actually served.

    Iterate it, or use `.dataset` in a tf.data / tf.function pipeline: rows are counted when a
    batch is pulled from `.dataset`, so anything prefetching further downstream counts early.
    """

    def __init__(self, dataset: tf.data.Dataset, names: list[str], weights: list[float], served: tf.Variable):
        self.dataset = dataset
        self.names = names
        self.weights = [w / sum(weights) for w in weights]
        self._served = served

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.dataset)

    def served(self) -> dict[str, int]:
        """Rows handed out so far, per source."""
        return dict(zip(self.names, (int(n) for n in self._served.numpy())))

    def achieved(self) -> dict[str, float]:
        """Fraction of the rows served so far that came from each source (0.0 before any)."""
        counts = self._served.numpy()
        total = max(int(counts.sum()), 1)
        return {name: int(n) / total for name, n in zip(self.names, counts)}

    def summary(self) -> dict[str, Any]:
        """Set and achieved ratios, JSON-ready, for a run's metadata."""
        achieved, served = self.achieved(), self.served()
        return {"sources": [{"name": name, "weight": weight, "achieved": achieved[name], "rows": served[name]}
                            for name, weight in zip(self.names, self.weights)]}


def _batch_size(dataset: tf.data.Dataset) -> int | None:
    return tf.nest.flatten(dataset.element_spec)[0].shape[0]


def mix(
    sources: Mapping[tf.data.Dataset | str | DatasetRef, float],
    *,
    seed: int = 0,
    batch_size: int | None = None,
    store: Store | None = None,
    read: Callable[..., tf.data.Dataset] = transitions,
) -> Mix:
    """Batches of `batch_size` rows drawn from `sources` in proportion to their weights.

    A source is a tf.data.Dataset of batched row dicts that never ends (the readers' default
    `repeat=True`), or a dataset reference (`NAME[@N]`) read from `store` with
    `read(store, ref, seed=...)` (default: 1-step `transitions`; pass a `functools.partial`
    for other readers or options). All sources must yield the same fields. `batch_size`
    defaults to the first source's static batch size. Source i is named by its reference, or
    `source<i>` for a dataset, and its rows carry `source == i`.
    """
    if not sources:
        raise ValueError("mix needs at least one source")
    weights = [float(w) for w in sources.values()]
    if min(weights) < 0 or not math.isfinite(sum(weights)) or sum(weights) <= 0:
        raise ValueError(f"weights must be non-negative and not all zero, got {weights}")
    names, datasets = [], []
    for index, source in enumerate(sources):
        if isinstance(source, tf.data.Dataset):
            names.append(f"source{index}")
            datasets.append(source)
        elif store is None:
            raise ValueError(f"source {source!r} is a dataset reference: pass store= to read it")
        else:
            names.append(str(source))
            datasets.append(read(store, source, seed=seed + index))
    batch_size = batch_size or _batch_size(datasets[0])
    if not batch_size:
        raise ValueError("the first source has no static batch size: pass batch_size=")
    schedule = row_schedule(weights, batch_size)
    # A source that ends (a Reverb table that timed out) leaves a short last part: dropped, so
    # every batch has exactly `batch_size` rows and the mix ends when its first source does.
    parts = tuple(dataset.rebatch(schedule[:, i], drop_remainder=True) for i, dataset in enumerate(datasets))

    def combine(index: tf.Tensor, parts: tuple[dict[str, Any], ...]) -> dict[str, Any]:
        rows = tf.nest.map_structure(lambda *leaves: tf.concat(leaves, 0), *parts)
        sizes = [tf.shape(tf.nest.flatten(part)[0])[0] for part in parts]
        rows[SOURCE_FIELD] = tf.repeat(tf.range(len(parts), dtype=tf.int32), sizes)
        rows = shuffle_rows(rows, tf.stack([tf.constant(seed, tf.int64), index]))
        return tf.nest.map_structure(lambda leaf: tf.ensure_shape(leaf, [batch_size, *leaf.shape[1:]]), rows)

    served = tf.Variable(tf.zeros([len(parts)], tf.int64), trainable=False, name="mix_served")

    def count(batch: dict[str, Any]) -> dict[str, Any]:
        served.assign_add(tf.math.bincount(batch[SOURCE_FIELD], minlength=len(parts), maxlength=len(parts),
                                           dtype=tf.int64))
        return batch

    mixed = tf.data.Dataset.zip(parts).enumerate().map(combine, num_parallel_calls=AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.experimental_optimization.inject_prefetch = False  # else tf.data prefetches past the counter
    return Mix(mixed.prefetch(AUTOTUNE).map(count).with_options(options), names, weights, served)
