"""NumPy twins of `rlstore.reading.transforms`: episodes laid end to end -> learner rows.

Same conventions, same arithmetic in the same order (so float32 results are bit-identical to
the tf.data readers'): RLDS SAR alignment, episode boundaries read from `is_first`/`is_last`,
n-step `discount` that includes gamma^m, sequences zero-padded past an episode's end with a
`mask`. See `rlstore.reading.transforms` for the definitions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rlstore.frames import episode_firsts, stack

Steps = dict[str, Any]
INDEXED_FIELDS = ("observation", "next_observation")  # row fields that hold step indices until batched


def map_tree(function, tree: Any) -> Any:
    """`function` applied to every array leaf of a nested dict."""
    if isinstance(tree, dict):
        return {key: map_tree(function, value) for key, value in tree.items()}
    return function(tree)


def _bounds(steps: Steps) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(episode index of every step, index of each episode's first step, ... of its last step)."""
    is_first = np.asarray(steps["is_first"]).astype(bool)
    is_last = np.asarray(steps["is_last"]).astype(bool)
    return np.cumsum(is_first) - 1, np.flatnonzero(is_first), np.flatnonzero(is_last)


def _as_rank(value: np.ndarray, rank: int) -> np.ndarray:
    return value.reshape(value.shape + (1,) * (rank - value.ndim)) if rank > value.ndim else value


def check_transition_options(n_step: int, gamma: float) -> None:
    if n_step < 1:
        raise ValueError(f"n_step must be at least 1, got {n_step}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {gamma}")


def check_sequence_options(length: int, period: int, burn_in: int) -> None:
    if length < 1 or period < 1 or burn_in < 0:
        raise ValueError(f"need length >= 1, period >= 1, burn_in >= 0; got {length}, {period}, {burn_in}")


def episode_transitions(steps: Steps, n_step: int = 1, gamma: float = 0.99) -> dict[str, Any]:
    """n-step transitions, one per step that has an action; as `reading.transforms.episode_transitions`."""
    check_transition_options(n_step, gamma)
    episode, _, lasts = _bounds(steps)
    is_last = np.asarray(steps["is_last"]).astype(bool)
    start = np.flatnonzero(~is_last)
    end = lasts[episode[start]]
    reward = np.asarray(steps["reward"])
    dtype = reward.dtype if reward.dtype.kind == "f" else np.dtype(np.float32)
    reward = reward.astype(dtype, copy=False)
    discount = np.asarray(steps["discount"]).astype(dtype, copy=False)
    gamma = dtype.type(gamma)
    total = np.zeros_like(reward[start])
    scale = np.ones_like(discount[start])
    for k in range(n_step):
        index = np.minimum(start + k, end)
        active = _as_rank(start + k < end, scale.ndim)
        weight = np.where(active, scale, np.zeros_like(scale))
        total = total + _as_rank(weight, reward.ndim) * reward[index]
        scale = np.where(active, scale * gamma * discount[index], scale)
    return {
        "observation": map_tree(lambda leaf: leaf[start], steps["observation"]),
        "action": map_tree(lambda leaf: leaf[start], steps["action"]),
        "reward": total,
        "discount": scale,
        "next_observation": map_tree(lambda leaf: leaf[np.minimum(start + n_step, end)], steps["observation"]),
    }


def episode_sequences(steps: Steps, length: int, period: int, burn_in: int = 0,
                      is_demo: bool = False) -> dict[str, Any]:
    """[num_sequences, burn_in + length, ...] step sequences with `mask` and `is_demo`;
    as `reading.transforms.episode_sequences`."""
    check_sequence_options(length, period, burn_in)
    span = burn_in + length
    _, firsts, lasts = _bounds(steps)
    sizes = lasts - firsts + 1
    counts = np.minimum((np.maximum(sizes - span, 0) + period - 1) // period + 1, (sizes + period - 1) // period)
    offsets = np.concatenate([np.arange(count) for count in counts]) if counts.size else np.zeros(0, np.int64)
    starts = np.repeat(firsts, counts) + period * offsets
    ends = np.repeat(lasts, counts)[:, None]
    index = starts[:, None] + np.arange(span)[None, :]
    real = index <= ends

    def pad(leaf: np.ndarray) -> np.ndarray:
        value = leaf[np.minimum(index, ends)]
        filler = np.full_like(value, b"") if value.dtype == object else np.zeros_like(value)
        return np.where(_as_rank(real, value.ndim), value, filler)

    sequences = map_tree(pad, dict(steps))
    sequences["mask"] = real.astype(np.float32)
    sequences["is_demo"] = np.full(starts.shape, is_demo)
    return sequences


def rows_of(tree: Any) -> int:
    """The leading-axis size shared by every leaf."""
    while isinstance(tree, dict):
        tree = next(iter(tree.values()))
    return len(tree)


def gather(leaf: Any, index: np.ndarray) -> np.ndarray:
    """`leaf[index]` for integer indices of any shape, through `np.take`: NumPy's fancy
    indexing of rows is ~10x slower on 2-D arrays (16,384 rows of float32[4]: 0.8 ms, 0.07 ms)."""
    return np.take(np.asarray(leaf), index, axis=0)


def take_rows(tree: Any, index: np.ndarray | slice) -> Any:
    if isinstance(index, np.ndarray) and index.dtype.kind in "iu":
        return map_tree(lambda leaf: gather(leaf, index), tree)
    return map_tree(lambda leaf: leaf[index], tree)


@dataclass(frozen=True)
class StepObservations:
    """The observations of steps laid end to end, kept apart from rows that hold step indices.

    Rows made from `indexed(steps)` carry step indices in `observation`/`next_observation`
    (cheap rows however large the observations); `fill` gathers each batch's observations, and
    rebuilds frame stacks (`rlstore.frames`) when the dataset stores single frames (`stack` > 1),
    so every frame is stored once and read once per use. Row padding (`mask` 0) gets zeros, as
    padding of whole observations does. The tf.data readers do the same for stacked datasets.
    """

    values: Any  # nested [T, ...] arrays; single frames [T, *S] when stack > 1
    episode_first: np.ndarray  # [T]: index of each step's episode's first step
    stack: int = 1

    @classmethod
    def split(cls, steps: Steps, stack: int = 1) -> tuple["StepObservations", Steps]:
        """(the observations of `steps`, `steps` with each observation replaced by its step index)."""
        first = episode_firsts(steps["is_first"])
        return cls(steps["observation"], first, stack), {**steps, "observation": np.arange(len(first))}

    def fill(self, batch: dict[str, Any]) -> dict[str, Any]:
        """`batch` with the observations its indexed fields point at."""
        mask = batch.get("mask")
        return {key: self.at(value, mask) if key in INDEXED_FIELDS else value for key, value in batch.items()}

    def at(self, indices: np.ndarray, mask: np.ndarray | None = None) -> Any:
        """Observations at step indices of any shape ([B] rows, [B, L] sequences)."""
        indices = np.asarray(indices)
        if self.stack > 1:
            flat = stack(self.values, self.episode_first, indices.reshape(-1), self.stack)
            values = flat.reshape(indices.shape + flat.shape[1:])
        else:
            values = map_tree(lambda leaf: gather(leaf, indices), self.values)
        if mask is None:
            return values
        real = np.asarray(mask) > 0

        def pad(value: np.ndarray) -> np.ndarray:
            filler = np.full_like(value, b"") if value.dtype == object else np.zeros_like(value)
            return np.where(_as_rank(real, value.ndim), value, filler)

        return map_tree(pad, values)
