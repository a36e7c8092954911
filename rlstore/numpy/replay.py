"""A store version decoded once into contiguous columns in RAM, sampled by index gathers.

The epoch readers (`rlstore.numpy.readers`) decode the shards again every epoch, which is what
a dataset larger than memory needs. A replay buffer (TorchRL's, d3rlpy's, Acme's) instead holds
its rows in memory and samples them at random; `Replay` is that, filled from a pinned version:

    replay = Replay.transitions(Store("./store"), "catch_logs@1", n_step=3)
    batch = replay.sample(256, np.random.default_rng(0))    # or replay.rows(indices)

Rows are the epoch readers' rows, bit for bit (the same transforms make them), so n-step
returns, sequence padding, masks and frame stacks mean the same. Only the step observations are
stored, once: rows hold step indices in `observation`/`next_observation` and each batch gathers
its observations (and rebuilds its frame stacks) from them (`StepObservations`), so transitions
do not hold every observation twice and stacked frames are never stored k times.
"""
from __future__ import annotations

import itertools
from functools import partial
from typing import Any, Callable

import numpy as np

from rlstore.chunks import chunk_episodes_for
from rlstore.frames import observation_stack
from rlstore.names import DatasetRef
from rlstore.nest import flatten, unflatten
from rlstore.numpy.readers import decode_records
from rlstore.numpy.records import episode_records
from rlstore.numpy.transforms import (INDEXED_FIELDS, StepObservations, check_sequence_options,
                                      check_transition_options, episode_sequences, episode_transitions, rows_of,
                                      take_rows)
from rlstore.store import Store

Batch = dict[str, Any]


class Replay:
    """Every row of one version in RAM: `len(replay)` rows, gathered by `rows` or `sample`."""

    def __init__(self, store: Store, ref: str | DatasetRef, to_rows: Callable[[dict[str, Any]], dict[str, Any]]):
        ref = store.resolve(ref)
        manifest = store.manifest(ref)
        self.ref = ref
        records = episode_records(store.shard_paths(ref), shuffle=False, rng=None, shuffle_buffer=0)
        stack = observation_stack(manifest.schema)
        observations, firsts, rows, offset = [], [], [], 0
        while chunk := list(itertools.islice(records, chunk_episodes_for(manifest))):
            chunk_observations, steps = StepObservations.split(decode_records(chunk, manifest)[0], stack)
            chunk_rows = to_rows(steps)
            for key in INDEXED_FIELDS:
                if key in chunk_rows:
                    chunk_rows[key] = chunk_rows[key] + offset
            observations.append(chunk_observations.values)
            firsts.append(chunk_observations.episode_first + offset)
            rows.append(chunk_rows)
            offset += len(chunk_observations.episode_first)
        self.size = sum(rows_of(chunk_rows) for chunk_rows in rows)
        if not self.size:
            raise ValueError(f"{ref} has no rows to sample: no episodes, or none long enough")
        self.observations = StepObservations(_concatenate(observations), np.concatenate(firsts), stack)
        self._rows = _concatenate(rows)

    @classmethod
    def transitions(cls, store: Store, ref: str | DatasetRef, *, n_step: int = 1, gamma: float = 0.99) -> "Replay":
        """n-step transitions, as `rlstore.numpy.transitions` makes them."""
        check_transition_options(n_step, gamma)
        return cls(store, ref, partial(episode_transitions, n_step=n_step, gamma=gamma))

    @classmethod
    def sequences(cls, store: Store, ref: str | DatasetRef, *, length: int, period: int, burn_in: int = 0,
                  is_demo: bool = False) -> "Replay":
        """[burn_in + length] step sequences with `mask`, as `rlstore.numpy.sequences` makes them."""
        check_sequence_options(length, period, burn_in)
        return cls(store, ref, partial(episode_sequences, length=length, period=period, burn_in=burn_in,
                                       is_demo=is_demo))

    def __len__(self) -> int:
        return self.size

    def rows(self, indices: np.ndarray) -> Batch:
        """The rows at `indices`, observations gathered (and stacks rebuilt) for these rows only."""
        return self.observations.fill(take_rows(self._rows, np.asarray(indices)))

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """`batch_size` rows drawn uniformly with replacement (TorchRL's `RandomSampler`)."""
        return self.rows(rng.integers(0, self.size, batch_size))

    def nbytes(self) -> int:
        """Bytes held: the step observations and the rows."""
        leaves = flatten({"observation": self.observations.values, "first": self.observations.episode_first,
                          "rows": self._rows})
        return sum(leaf.nbytes for leaf in leaves.values())


def _concatenate(trees: list[Any]) -> Any:
    """One tree whose leaves are the trees' leaves end to end."""
    flat = [flatten({"tree": tree}) for tree in trees]
    return unflatten({key: np.concatenate([part[key] for part in flat]) for key in flat[0]})["tree"]
