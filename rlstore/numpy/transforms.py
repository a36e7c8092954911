"""NumPy twins of `rlstore.reading.transforms`: episodes laid end to end -> learner rows.

Same conventions, same arithmetic in the same order (so float32 results are bit-identical to
the tf.data readers'): RLDS SAR alignment, episode boundaries read from `is_first`/`is_last`,
n-step `discount` that includes gamma^m, sequences zero-padded past an episode's end with a
`mask`. See `rlstore.reading.transforms` for the definitions.
"""
from __future__ import annotations

from typing import Any

import numpy as np

Steps = dict[str, Any]


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


def take_rows(tree: Any, index: np.ndarray | slice) -> Any:
    return map_tree(lambda leaf: leaf[index], tree)
