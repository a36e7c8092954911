"""Frame stacks, stored once: the one definition readers and sources share (numpy only).

Atari agents see the last k frames stacked: observation o_t = frames f_{t-k+1} .. f_t, oldest
first, stacked on a new LAST axis (Dopamine's and the DQN Replay Dataset's layout: 84x84
frames give 84x84xk states). Storing o_t would store every frame k times, so a dataset whose
observation field has `stack=k` in its schema holds one frame per step and readers rebuild o_t.

Start-of-episode padding follows Dopamine: before an episode's first frame there are k-1
all-zero frames, so o_0 = (0, .., 0, f_0). Stacks never reach into the previous episode.

    frames = unstack(stacks)                                # ingest: [T, *S, k] -> [T, *S]
    states = stack(frames, episode_first, indices, k)       # readers: -> [N, *S, k]
    state = push(previous_state, frame, k)                  # envs, one step at a time
    k = detect_stack(observations)                          # ingest without --frame-stack: k or None

`episode_first[i]` is the index of the first step of step i's episode in `frames` (frames may
hold several whole episodes laid end to end). The tf.data readers implement the same gather in
`rlstore.reading.transforms.stacked_gather`; tests hold the two to each other.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from rlstore.schema import Schema


def observation_stack(schema: "Schema") -> int:
    """How many frames a reader stacks into each observation of a dataset (1: stored whole)."""
    spec = schema.steps.get("observation")
    return spec.stack if spec is not None else 1


class FrameStackError(ValueError):
    """Observations are not the frame stacks they were declared to be; names the step."""

    def __init__(self, message: str, step: int | None = None):
        super().__init__(message)
        self.step = step


def stack_sources(indices: np.ndarray, episode_first: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """For each index, the k frame indices of its stack and whether each is a real frame.

    Returns `(sources [N, k], real [N, k])`; where `real` is False the slot is zero padding
    (its source index is clamped to the episode's first frame so it can be gathered safely).
    """
    indices = np.asarray(indices, np.int64)
    first = np.asarray(episode_first, np.int64)[indices]
    sources = indices[:, None] - (k - 1) + np.arange(k)[None, :]
    real = sources >= first[:, None]
    return np.maximum(sources, first[:, None]), real


def stack(frames: np.ndarray, episode_first: np.ndarray, indices: np.ndarray, k: int) -> np.ndarray:
    """The stacked observations [N, *frame_shape, k] at `indices`, each frame read once."""
    sources, real = stack_sources(indices, episode_first, k)
    gathered = np.asarray(frames)[sources]  # [N, k, *S], a fresh array
    gathered[~real] = 0  # only the padding slots: ~7x cheaper than masking every frame
    return np.moveaxis(gathered, 1, -1)


def push(previous: np.ndarray | None, frame: np.ndarray, k: int) -> np.ndarray:
    """The stacked observation [*S, k] after `frame`: `previous` shifted by one frame, or, at an
    episode's first step (`previous` None), k-1 zero frames then `frame`. Step by step, this is
    `stack` of the episode's frames; online envs build what their agents see with it, so that
    the single frames they write back rebuild the same stacks."""
    frame = np.asarray(frame)
    if previous is None:
        state = np.zeros((*frame.shape, k), frame.dtype)
    else:
        state = np.empty_like(previous)
        state[..., :-1] = previous[..., 1:]
    state[..., -1] = frame
    return state


def episode_firsts(is_first: np.ndarray) -> np.ndarray:
    """For each step of episodes laid end to end, the index of its episode's first step."""
    is_first = np.asarray(is_first, bool)
    index = np.arange(len(is_first))
    return np.maximum.accumulate(np.where(is_first, index, 0))


def unstack(stacks: np.ndarray, k: int) -> np.ndarray:
    """The single frames [T, *S] behind one episode's stacked observations [T, *S, k].

    Checks that they really are Dopamine-style stacks: the last axis is k, step 0 holds k-1
    zero frames before its own, and each stack is the previous one shifted by one frame.
    Anything else raises FrameStackError naming the first step that disagrees.
    """
    stacks = np.asarray(stacks)
    if stacks.ndim < 2 or stacks.shape[-1] != k:
        raise FrameStackError(f"a stack of {k} frames needs shape [T, ..., {k}], got per-step shape "
                              f"{tuple(stacks.shape[1:])}")
    if k > 1:
        if stacks[0, ..., :-1].any():
            raise FrameStackError(f"the first stack must start with {k - 1} all-zero padding frames "
                                  "(Dopamine's start-of-episode padding)", step=0)
        shifted = (stacks[1:, ..., :-1] == stacks[:-1, ..., 1:]).reshape(len(stacks) - 1, -1).all(axis=1)
        if not shifted.all():
            step = int(np.flatnonzero(~shifted)[0]) + 1
            raise FrameStackError("this stack is not the previous step's stack shifted by one frame", step=step)
    return np.ascontiguousarray(stacks[..., -1])


MAX_DETECTED_STACK = 16  # a wider last axis is an image's width, not a stack


def detect_stack(observations: np.ndarray) -> int | None:
    """k when one episode's observations [T, *S, k] are Dopamine-style stacks of k >= 2 frames,
    else None (they are stored whole).

    The test is `unstack`'s own check, so what is detected is exactly what unstacking then stores
    and `stack` rebuilds: detection can make a dataset hold its frames once, never change a value.
    It asks for evidence a camera image does not give by chance: uint8 frames of at least one
    axis, 2 <= k <= MAX_DETECTED_STACK, at least two steps, not all zero, the first step's older
    k-1 slots all zero and every later step the previous one shifted by one frame (an RGB image's
    R and G would have to be black at step 0 and each step's R and G the previous step's G and B).
    """
    if not isinstance(observations, np.ndarray) or observations.dtype != np.uint8 or observations.ndim < 3:
        return None
    k = observations.shape[-1]
    if not 2 <= k <= MAX_DETECTED_STACK or len(observations) < 2 or not observations.any():
        return None
    try:
        unstack(observations, k)
    except FrameStackError:
        return None
    return k
