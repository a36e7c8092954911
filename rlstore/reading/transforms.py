"""Pure functions from the steps of whole episodes to learner rows, in the style of RLDS's
transformations, but vectorised over whole tensors instead of nested step datasets.

Input everywhere is an RLDS step dict whose leaves have a leading time axis: `observation`
(a tensor or a nested dict), `action`, `reward`, `discount`, `is_first`, `is_last`,
`is_terminal` and any step metadata. It may hold ONE episode or SEVERAL WHOLE episodes laid end
to end; episode boundaries are read from `is_first`/`is_last`, so nothing ever crosses from one
episode into the next. The readers rely on that: they decode a chunk of episodes as one
concatenation and turn it into rows with a single call.

Alignment is RLDS's SAR: step t holds o_t, a_t and the r_t, d_t that follow a_t; the last step
of an episode holds only the final observation (its action, reward and discount are zeros).
"""
from __future__ import annotations

import math
import sys
from typing import Any

import tensorflow as tf

from rlstore import quiet

Steps = dict[str, Any]


def _bounds(steps: Steps) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(episode index of every step, index of each episode's first step, ... of its last step)."""
    is_first = tf.cast(steps["is_first"], tf.bool)
    is_last = tf.cast(steps["is_last"], tf.bool)
    index = tf.range(tf.shape(is_first, out_type=tf.int64)[0])
    episode = tf.cumsum(tf.cast(is_first, tf.int64)) - 1
    return episode, tf.boolean_mask(index, is_first), tf.boolean_mask(index, is_last)


def _gather(tree: Any, indices: tf.Tensor) -> Any:
    return tf.nest.map_structure(lambda leaf: tf.gather(leaf, indices), tree)


def _as_rank(value: tf.Tensor, rank: int) -> tf.Tensor:
    """Appends unit axes so `value` broadcasts against a tensor of rank `rank`."""
    extra = rank - value.shape.rank
    return tf.reshape(value, tf.concat([tf.shape(value), tf.ones([extra], tf.int32)], 0)) if extra > 0 else value


def episode_firsts(steps: Steps) -> tf.Tensor:
    """For every step, the index of its episode's first step (tf twin of `rlstore.frames.episode_firsts`)."""
    episode, firsts, _ = _bounds(steps)
    return tf.gather(firsts, episode)


def with_zero_frame(frames: tf.Tensor) -> tf.Tensor:
    """`frames` behind one all-zero frame at index 0, the padding every `frame_sources` slot
    before an episode's start points at (then more zero frames, up to a `_bucket` length)."""
    frames = tf.convert_to_tensor(frames)
    zeros = tf.zeros(tf.concat([[1], tf.shape(frames)[1:]], 0), frames.dtype)
    size = tf.shape(frames, out_type=tf.int64)[0] + 1
    return tf.concat([zeros, frames, tf.repeat(zeros, _bucket(size) - size, axis=0)], 0)


def _bucket(size: tf.Tensor) -> tf.Tensor:
    """`size` rounded up to a multiple of 1/8 to 1/16 of itself: at most 16 lengths per power
    of two, so `gather_stacks` compiles for a few shapes only, and pads by at most 1/8."""
    octave = tf.cast(tf.math.log(tf.cast(size, tf.float64)) / math.log(2.0), tf.int64)
    step = tf.bitwise.left_shift(tf.constant(1, tf.int64), tf.maximum(octave - 3, 0))
    return (size + step - 1) // step * step


def frame_sources(episode_first: tf.Tensor, indices: tf.Tensor, frame_stack: int) -> tf.Tensor:
    """[N, k] indices into `with_zero_frame(frames)` of the stacks at `indices`, oldest first;
    slots before the episode's first step point at the zero frame (Dopamine's padding)."""
    indices = tf.cast(indices, tf.int64)
    sources = indices[:, None] + tf.range(1 - frame_stack, 1, dtype=tf.int64)[None, :]
    first = tf.gather(episode_first, indices)[:, None]
    return tf.where(sources >= first, sources + 1, tf.zeros_like(sources))


def gather_stacks(padded_frames: tf.Tensor, sources: tf.Tensor) -> tf.Tensor:
    """Stacks [N, *frame_shape, k] from `with_zero_frame(frames)` and `frame_sources(...)`."""
    _first_compile_quietly()
    size = tf.shape(sources, out_type=tf.int64)[0]
    padded_sources = tf.pad(sources, [[0, _bucket(tf.maximum(size, 1)) - size], [0, 0]])
    stacks = _gather_stacks(padded_frames, padded_sources)[:size]
    return stacks if stacks.dtype == padded_frames.dtype else tf.bitcast(stacks, padded_frames.dtype)


_compiled = False


def _first_compile_quietly() -> None:
    """In a program that called `rlstore.quiet.silence()`, makes the process's first XLA
    compilation (which prints TensorFlow's one-time "Compiled cluster using XLA!" banner) happen
    here, eagerly, with that banner held back; later compilations print nothing. Readers call
    `gather_stacks` while building their tf.data graphs, before any tf.data thread compiles."""
    global _compiled
    if _compiled or not quiet.silenced():
        return
    _compiled = True
    with tf.init_scope(), quiet.stderr_without(quiet.XLA_BANNER):
        _gather_stacks(tf.zeros([1, 1], tf.uint8), tf.zeros([1, 1], tf.int64))


@tf.function(jit_compile=True)
def _gather_stacks(padded_frames: tf.Tensor, sources: tf.Tensor) -> tf.Tensor:
    """The stacks [N, *S, k] (or, for uint8 stacks of 2, 4 or 8, the same bytes as [N, *S] words).

    Moving the frame axis last is a byte-interleaving transpose, the costliest step of making
    stacks: ~35 us per 84x84x4 stack with tf.gather + tf.transpose, ~7 us when XLA compiles the
    gather and the transpose into one loop, ~4 us when the k bytes of a pixel are instead packed
    into one k-byte word with shifts and ORs (elementwise, so XLA fuses them into one vectorised
    loop; on a little-endian machine the word's bytes are then the frames in order). The
    caller's `tf.bitcast` views the words as bytes for free; inside XLA it costs a copy (~9 us).
    XLA compiles once per input shape: hence the few `_bucket` lengths of both inputs."""
    gathered = tf.gather(padded_frames, sources)  # [N, k, *S]
    word = _WORDS.get(gathered.shape[1]) if gathered.dtype == tf.uint8 and sys.byteorder == "little" else None
    if word is None:
        return tf.transpose(gathered, [0, *range(2, gathered.shape.rank), 1])
    widened = tf.cast(gathered, word)
    packed = widened[:, 0]
    for slot in range(1, gathered.shape[1]):
        packed = tf.bitwise.bitwise_or(packed, tf.bitwise.left_shift(widened[:, slot], tf.constant(8 * slot, word)))
    return packed


_WORDS = {2: tf.uint16, 4: tf.uint32, 8: tf.uint64}  # stack size -> the word holding one pixel's k bytes


def stacked_gather(frames: tf.Tensor, steps: Steps, indices: tf.Tensor, frame_stack: int) -> tf.Tensor:
    """Stacks [N, *frame_shape, k] of the last k frames up to each of `indices`, oldest first,
    with all-zero frames before an episode's first step: the tf twin of `rlstore.frames.stack`.
    `steps` gives the episode bounds (`is_first`, `is_last`) of `frames`. Readers that gather
    many batches from the same frames keep `with_zero_frame` and `episode_firsts` instead."""
    sources = frame_sources(episode_firsts(steps), indices, frame_stack)
    return gather_stacks(with_zero_frame(tf.convert_to_tensor(frames)), sources)


def episode_transitions(steps: Steps, n_step: int = 1, gamma: float = 0.99) -> dict[str, Any]:
    """n-step transitions, one per step that has an action (T-1 per episode of T steps).

    For the transition from step t, let m = min(n_step, L - t) be the number of actions taken
    before the window stops, where L is the episode's last step. Then:
      reward           = sum_{k<m} (prod_{j<k} gamma * d_{t+j}) * r_{t+k}
      discount         = prod_{k<m} gamma * d_{t+k}       (gamma^m IS included)
      next_observation = o_{t+m}                          (o_{t+n}, clipped to the last step)
    so the learner's target is `reward + discount * V(next_observation)`, with no further
    multiplication by gamma. After a terminal step the stored d is 0, so `discount` is 0 and
    nothing is bootstrapped; through a time-limit cut d stays non-zero and `discount` stays
    gamma^m * prod(d): the learner bootstraps from the final observation, as it must.
    Rewards and discounts are computed in the reward's float dtype (float32 for integer rewards).
    """
    if n_step < 1:
        raise ValueError(f"n_step must be at least 1, got {n_step}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {gamma}")
    episode, _, lasts = _bounds(steps)
    is_last = tf.cast(steps["is_last"], tf.bool)
    start = tf.boolean_mask(tf.range(tf.size(is_last, out_type=tf.int64)), ~is_last)
    end = tf.gather(lasts, tf.gather(episode, start))
    reward = tf.convert_to_tensor(steps["reward"])
    dtype = reward.dtype if reward.dtype.is_floating else tf.float32
    reward = tf.cast(reward, dtype)
    discount = tf.cast(steps["discount"], dtype)
    gamma = tf.constant(gamma, dtype)
    total = tf.zeros_like(tf.gather(reward, start))
    scale = tf.ones_like(tf.gather(discount, start))
    for k in range(n_step):
        index = tf.minimum(start + k, end)
        active = _as_rank(start + k < end, scale.shape.rank)  # step t+k still has an action
        weight = tf.where(active, scale, tf.zeros_like(scale))
        total += _as_rank(weight, reward.shape.rank) * tf.gather(reward, index)
        scale = tf.where(active, scale * gamma * tf.gather(discount, index), scale)
    return {
        "observation": _gather(steps["observation"], start),
        "action": _gather(steps["action"], start),
        "reward": total,
        "discount": scale,
        "next_observation": _gather(steps["observation"], tf.minimum(start + n_step, end)),
    }


def episode_sequences(
    steps: Steps, length: int, period: int, burn_in: int = 0, is_demo: bool = False
) -> dict[str, Any]:
    """Fixed-length, overlapping sequences of steps for recurrent learners (R2D2 / R2D3).

    Every sequence spans `burn_in + length` steps: the first `burn_in` are for warming up the
    recurrent state, the rest for learning. Sequences start at step 0 of each episode and then
    every `period` steps, until one reaches the episode's last step (with `period < length`
    consecutive sequences overlap by `burn_in + length - period` steps). A sequence running
    past the end is zero-padded, never continued into the next episode.

    Returns the step fields as [num_sequences, burn_in + length, ...] tensors, plus
    `mask` (float32 [num_sequences, burn_in + length]: 1 on real steps, 0 on padding) and
    `is_demo` (bool [num_sequences]: the marker a demonstration-mixing learner reads).
    """
    if length < 1 or period < 1 or burn_in < 0:
        raise ValueError(f"need length >= 1, period >= 1, burn_in >= 0; got {length}, {period}, {burn_in}")
    span = burn_in + length
    _, firsts, lasts = _bounds(steps)
    sizes = lasts - firsts + 1
    counts = tf.minimum((tf.maximum(sizes - span, 0) + period - 1) // period + 1, (sizes + period - 1) // period)
    starts = tf.repeat(firsts, counts) + period * tf.ragged.range(counts).flat_values
    ends = tf.repeat(lasts, counts)[:, None]
    index = starts[:, None] + tf.range(span, dtype=tf.int64)[None, :]
    real = index <= ends

    def pad(leaf: tf.Tensor) -> tf.Tensor:
        value = tf.gather(leaf, tf.minimum(index, ends))
        return tf.where(_as_rank(real, value.shape.rank), value, tf.zeros_like(value))

    sequences = tf.nest.map_structure(pad, dict(steps))
    sequences["mask"] = tf.cast(real, tf.float32)
    sequences["is_demo"] = tf.fill(tf.shape(starts), is_demo)
    return sequences


def shuffle_rows(rows: Any, seed: tf.Tensor) -> Any:
    """The same random permutation of the leading axis of every leaf (stateless: the seed,
    shape [2], fully determines it, so parallel and repeated runs agree)."""
    size = tf.shape(tf.nest.flatten(rows)[0], out_type=tf.int64)[0]
    return _gather(rows, tf.random.experimental.stateless_shuffle(tf.range(size), seed))
