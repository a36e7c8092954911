"""tf.data readers over a store version: episodes, steps, n-step transitions, sequences.

Why they are fast: tf.data costs a few microseconds per element, and a learner wants hundreds
of thousands of rows per second. So no element here is ever a single step or transition.
Serialized episodes are grouped into chunks of `chunk_episodes`; each chunk is decoded with
one parse (`decoding.decode_episodes`), turned into rows by one vectorised transform
(`transforms`), permuted with a seeded stateless shuffle, and cut into batches by
`Dataset.rebatch`. The per-element overhead is paid per chunk and per batch.

Shuffling is therefore three-level: shard order and an episode buffer (`records`), then rows
within a chunk. A batch mixes rows from about `chunk_episodes` episodes (by default as many as
decode to ~16 MB, at most 128; see `rlstore.chunks`); raise it for more mixing at the cost
of memory. Same seed, same batches: every random op is seeded and every parallel stage keeps
its order. The shard and chunk shuffles are tf.data's, which combine `seed` with TensorFlow's
global seed (`tf.random.set_seed`, which training sets from its `--seed`): two processes with
different global seeds get different orders from the same `seed`.

Frame-stacked datasets (`stack` > 1 in the schema: one frame stored per step, see
`rlstore.frames`) would multiply a chunk's memory by the rows' 2k frames each. So their rows
are made over step *indices* (cheap), shuffled, and only then are the stacks of a few batches'
rows at a time gathered from the chunk's frames (`transforms.gather_stacks`, one call per ~32 MB
of stacks, `_batches_per_gather`) and cut into batches: every frame is
decoded once per chunk, a chunk holds single frames only, and peak memory stays that of a few
chunks however large the dataset. Batches never span chunks: with `repeat`, each chunk's last
partial batch is dropped (a different one each epoch, since chunks are reshuffled); without
it, it is kept, so an epoch still yields every row once. Image fields (PNG/JPEG cameras) go the
same way: each image is decoded once per chunk, and a batch of 8-step windows gathers only its
own 8 x 32 images, where building every window of the chunk first copied each image 8 times.

Decoding PNG/JPEG images is then most of the cost (~100 us per 128x128x3 JPEG), paid again every
epoch, and a frame stack's parquet row and inflate (~12 us per step) are a third of its
transition's. So a repeating reader over a version with images or frame stacks decodes it once:
the first epoch's decoded chunks are kept and every later epoch serves them in a new order with
their rows reshuffled (each chunk keeps the episodes it drew in the first epoch). They are kept
in RAM up to `decoded_cache_bytes` (default 512 MB) and the rest in local temp files up to
`decoded_disk_bytes` (default 4 GiB), so the reader's memory stays bounded as the data grows
(`rlstore.reading.decoded_cache`). Larger versions are decoded every epoch as above.
`decoded_cache_bytes=0` spills all of it; both budgets 0 turn keeping off.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

import tensorflow as tf

from rlstore.chunks import chunk_episodes_for
from rlstore.frames import observation_stack
from rlstore.names import DatasetRef
from rlstore.nest import flatten, unflatten
from rlstore.reading import decoded_cache
from rlstore.reading.decoding import decode_episodes
from rlstore.reading.records import AUTOTUNE, episode_records, shard_files
from rlstore.reading.transforms import (episode_firsts, episode_sequences, episode_transitions, frame_sources,
                                        gather_stacks, shuffle_rows, with_zero_frame)
from rlstore.store import Store

DEFAULT_SHUFFLE_BUFFER = 256
DECODED_CACHE_BYTES = decoded_cache.RAM_BYTES  # image / frame-stack versions decoding to at most this stay in RAM
DECODED_DISK_BYTES = decoded_cache.DISK_BYTES  # ... else, up to this, in a temp file
STACK_GROUP_BYTES = 32 << 20  # frame stacks built by one gather, then cut into batches (`_batches_per_gather`)


def _records(store: Store, ref: str | DatasetRef, shuffle: bool, seed: int, repeat: bool, shuffle_buffer: int):
    """(manifest, serialized episodes) of one resolved version: `NAME` is pinned once, here."""
    ref = store.resolve(ref)
    records = episode_records(shard_files(store, ref), shuffle=shuffle, seed=seed, repeat=repeat,
                              shuffle_buffer=shuffle_buffer)
    return store.manifest(ref), records


def episodes(
    store: Store,
    ref: str | DatasetRef,
    *,
    shuffle: bool = True,
    seed: int = 0,
    repeat: bool = False,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
) -> tf.data.Dataset:
    """Whole RLDS episodes `{'steps': {field: [T, ...]}, **episode_metadata}`, one per element.

    Unlike TFDS's `as_dataset`, `steps` is a dict of tensors, not a nested dataset, so
    `transforms.episode_transitions` / `episode_sequences` apply to it directly. Episodes
    have different lengths, so this reader does not batch.
    """
    manifest, records = _records(store, ref, shuffle, seed, repeat, shuffle_buffer)
    schema = manifest.schema

    def decode(record: tf.Tensor) -> dict[str, Any]:
        steps, metadata = decode_episodes(record[None], schema)
        return {"steps": steps, **tf.nest.map_structure(lambda leaf: leaf[0], metadata)}

    return records.map(decode, num_parallel_calls=AUTOTUNE, deterministic=True).prefetch(AUTOTUNE)


def _rows(
    store: Store,
    ref: str | DatasetRef,
    to_rows: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    repeat: bool,
    shuffle_buffer: int,
    chunk_episodes: int | None,
    decoded_cache_bytes: int,
    decoded_disk_bytes: int,
) -> tf.data.Dataset:
    """Batches of the rows `to_rows` makes from chunks of whole episodes laid end to end.

    With `repeat`, batches all have exactly `batch_size` rows (a static batch dimension);
    without it, the last batch of the epoch holds what is left, so an epoch yields every row once.
    """
    ref = store.resolve(ref)
    manifest = store.manifest(ref)
    schema = manifest.schema
    frame_stack = observation_stack(schema)
    late = _late_fields(schema)
    per_chunk = chunk_episodes or chunk_episodes_for(manifest)
    kept = decoded_cache.placement(manifest, per_chunk, decoded_cache_bytes, decoded_disk_bytes) if repeat else None
    records = episode_records(shard_files(store, ref), shuffle=shuffle, seed=seed, repeat=repeat and kept is None,
                              shuffle_buffer=shuffle_buffer)

    def decoded(serialized: tf.Tensor) -> Any:
        steps = decode_episodes(serialized, schema)[0]
        flat = flatten(steps)
        sources = {key: flat[key] for key in late}
        if late:
            step_index = tf.range(tf.shape(flat["is_first"], out_type=tf.int64)[0])
            steps = unflatten({**flat, **dict.fromkeys(late, step_index)})
        rows = to_rows(steps)
        if not late:
            return rows
        if frame_stack > 1:
            rows = _with_stack_sources(rows, episode_firsts(steps), frame_stack)
        for key in sources:
            if frame_stack > 1 and key == "observation":
                sources[key] = with_zero_frame(sources[key])
            elif "mask" in rows:  # sequence padding gathers this all-zero row (see `_padded`)
                sources[key] = tf.concat([tf.zeros_like(sources[key][:1]), sources[key]], 0)
        return rows, sources

    def shuffled(index: tf.Tensor, chunk: Any) -> Any:
        rows = chunk[0] if late else chunk
        rows = shuffle_rows(rows, tf.stack([tf.constant(seed, tf.int64), index])) if shuffle else rows
        return (rows, *chunk[1:]) if late else rows

    chunks = records.batch(per_chunk).map(decoded, num_parallel_calls=AUTOTUNE, deterministic=True)
    spill_directory = None
    if kept:  # every later epoch reuses the first one's decoded chunks, in a new order, rows reshuffled
        chunks, spill_directory = decoded_cache.repeated(chunks, kept, -(-manifest.num_episodes // per_chunk), shuffle,
                                                         seed + 2, decoded_cache_bytes)
    chunks = chunks.enumerate().map(shuffled, num_parallel_calls=AUTOTUNE, deterministic=True)
    if not late:
        return decoded_cache.remove_with(chunks.rebatch(batch_size, drop_remainder=repeat).prefetch(AUTOTUNE),
                                         spill_directory)

    images = any(schema.steps[key].is_image for key in late)

    def batches(rows: dict[str, Any], sources: dict[str, tf.Tensor]) -> tf.data.Dataset:
        group = 1
        if frame_stack > 1 and not images:
            group = _batches_per_gather(rows, sources["observation"], frame_stack, batch_size)
        size = tf.shape(tf.nest.flatten(rows)[0], out_type=tf.int64)[0]
        count = size // batch_size if repeat else -(-size // batch_size)
        end = count * batch_size if repeat else size

        def gathered(number: tf.Tensor) -> dict[str, Any]:
            start = number * group * batch_size
            part = tf.nest.map_structure(lambda leaf: leaf[start:tf.minimum(start + group * batch_size, end)], rows)
            mask = part.get("mask")
            flat = flatten(part)
            stacked = {}
            for key, indices in flat.items():
                source = _source_of(key)
                if source not in sources:
                    continue
                if frame_stack > 1 and source == "observation":
                    stacked[key] = indices
                else:
                    flat[key] = tf.gather(sources[source], _padded(indices, mask))
            if stacked:
                flat.update(_stacks_at(stacked, sources["observation"]))
            return unflatten(flat)

        groups = tf.data.Dataset.range(-(-count // group)).map(gathered)
        return groups if repeat else groups.rebatch(batch_size)  # a chunk's short last batch stays its own

    batched = chunks.interleave(batches, cycle_length=2, num_parallel_calls=AUTOTUNE, deterministic=True)
    if images:
        batched = batched.with_options(_one_thread_per_op())
    batched = batched.prefetch(AUTOTUNE)
    if repeat:  # groups of whole batches: cut after the hand-over, in the caller's thread (`_batches_per_gather`)
        batched = batched.rebatch(batch_size, drop_remainder=True)
    return decoded_cache.remove_with(batched, spill_directory)


def _one_thread_per_op() -> tf.data.Options:
    """Options that run each op of the pipeline on the thread that calls it. An image batch is
    two large gathers (8-step windows of two 128x128x3 cameras: 25 MB a batch) and TensorFlow
    splits each over its intra-op threads, while tf.data already builds two batches at once
    (`interleave`) on a machine of 2 cores. Unsplit, an 8-step window of a 48-episode camera
    version kept in RAM cost 9-14% less CPU and came 9-17% faster with other work on the machine
    (load ~2.5); on an idle machine it made no difference (`benchmarks/images.py --quick --only
    camera`: 122 vs 125 us). Frame stacks gain nothing from it: their gather is one XLA call."""
    options = tf.data.Options()
    options.threading.max_intra_op_parallelism = 1
    return options


def _batches_per_gather(rows: dict[str, Any], frames: tf.Tensor, frame_stack: int, batch_size: int) -> int:
    """How many batches of frame stacks one `gather_stacks` call builds: as many as hold about
    `STACK_GROUP_BYTES` of stacks (18 batches of 32 Pong transitions, 84x84x4 stacks).

    Why: each element a tf.data stage hands to another thread costs ~100 us of CPU, and an XLA
    call ~200 us more however few stacks it makes; a batch of 32 transitions is only ~250 us
    of stacks. So a repeating reader builds a group of batches in one call, hands the group
    over once, and cuts it into batches last, with `rebatch` in the caller's thread (cheap
    slices). Every group holds whole batches, so the batches and their static shapes are
    exactly those of one call per batch; only two chunks' batches now alternate by the group,
    not by the batch. Without `repeat` a chunk's last batch may be short, so each group is cut
    before the hand-over, which keeps that batch its own and the order unchanged.
    Camera images are never grouped: their gather costs in proportion to its bytes (~25 MB a
    batch of 8-step windows), and a group would only hold more of them in memory at once."""
    per_row = [leaf.shape[1:-1].num_elements() for key, leaf in flatten(rows).items()
               if _source_of(key) == "observation"]
    frame_bytes = frames.shape[1:].num_elements()
    if None in per_row or frame_bytes is None:  # windows or frames of unknown size: one call per batch
        return 1
    stack_bytes = frame_bytes * frames.dtype.size * frame_stack
    return max(1, STACK_GROUP_BYTES // max(sum(per_row) * batch_size * stack_bytes, 1))


def _late_fields(schema) -> list[str]:
    """Step fields whose rows are made over step indices and gathered per batch: stacked frames
    (`rlstore.frames`) and images. A row of them is large and rows overlap (a transition's two
    stacks, a sequence's window), so gathering them per chunk would copy each decoded frame
    into every row it is part of, all at once; per batch, only the batch's rows are built."""
    return [key for key, spec in schema.steps.items() if spec.stack > 1 or spec.is_image]


def _source_of(key: str) -> str:
    """The step field a row field is made of: `next_observation...` rows are observations."""
    return key[len("next_"):] if key.startswith("next_observation") else key


def _with_stack_sources(rows: dict[str, Any], episode_first: tf.Tensor, frame_stack: int) -> dict[str, Any]:
    """`rows` with each stacked-observation field's step indices ([R] rows, [R, L] sequences)
    replaced by the [..., k] indices of its stack's frames in `with_zero_frame(frames)`. Made
    once per chunk, as one vectorised op over all its rows, because per batch the same few ops
    cost ~2 us of a transition's ~16. Sequence padding (mask 0) points every slot at the zero
    frame, so padded steps become all-zero stacks, as unstacked padding is zeros, with no
    masking pass after the gather."""
    flat = flatten(rows)
    mask = flat.get("mask")
    for key, steps in flat.items():
        if _source_of(key) != "observation":
            continue
        sources = frame_sources(episode_first, tf.reshape(steps, [-1]), frame_stack)
        if mask is not None:
            sources = tf.where(tf.reshape(mask > 0, [-1, 1]), sources, tf.zeros_like(sources))
        flat[key] = tf.reshape(sources, tf.concat([tf.shape(steps), [frame_stack]], 0))
    return unflatten(flat)


def _stacks_at(stack_sources: dict[str, tf.Tensor], padded_frames: tf.Tensor) -> dict[str, tf.Tensor]:
    """The stacked observations of a batch from their frames' indices ([B, k] rows, [B, L, k]
    sequences; `_with_stack_sources`), built by ONE `gather_stacks` call: a transition's
    observation and next observation cost one XLA launch, not two (each launch is a hand-over
    to XLA's host thread and back)."""
    parts = [tf.reshape(sources, [-1, sources.shape[-1]]) for sources in stack_sources.values()]
    stacks = tf.split(gather_stacks(padded_frames, tf.concat(parts, 0)), [tf.shape(part)[0] for part in parts])
    return {key: tf.reshape(flat, tf.concat([tf.shape(sources)[:-1], tf.shape(flat)[1:]], 0))
            for (key, sources), flat in zip(stack_sources.items(), stacks)}


def _padded(indices: tf.Tensor, mask: tf.Tensor | None) -> tf.Tensor:
    """Step indices into a source with one all-zero row in front: real steps shift by one,
    sequence padding (mask 0) points at the zero row. One gather then yields zero-padded
    windows; zeroing them after the gather (`tf.where` against a broadcast mask) cost ~1 ms per
    8-step window of two 128x128x3 cameras, 5x their JPEG decoding."""
    if mask is None:
        return indices
    return tf.where(mask > 0, indices + 1, tf.zeros_like(indices))


def steps(
    store: Store,
    ref: str | DatasetRef,
    *,
    batch_size: int = 256,
    shuffle: bool = True,
    seed: int = 0,
    repeat: bool = True,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    chunk_episodes: int | None = None,
    decoded_cache_bytes: int = DECODED_CACHE_BYTES,
    decoded_disk_bytes: int = DECODED_DISK_BYTES,
) -> tf.data.Dataset:
    """Batches of single RLDS steps (every step, last steps included), e.g. for BC; stacked
    observations are rebuilt as in `transitions`.
    `decoded_cache_bytes` / `decoded_disk_bytes`: how much of an image or frame-stack version a repeating reader
    keeps decoded in RAM, then in temp files (module docstring)."""
    return _rows(store, ref, lambda rows: rows, batch_size=batch_size, shuffle=shuffle, seed=seed, repeat=repeat,
                 shuffle_buffer=shuffle_buffer, chunk_episodes=chunk_episodes,
                 decoded_cache_bytes=decoded_cache_bytes, decoded_disk_bytes=decoded_disk_bytes)


def transitions(
    store: Store,
    ref: str | DatasetRef,
    *,
    n_step: int = 1,
    gamma: float = 0.99,
    batch_size: int = 256,
    shuffle: bool = True,
    seed: int = 0,
    repeat: bool = True,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    chunk_episodes: int | None = None,
    decoded_cache_bytes: int = DECODED_CACHE_BYTES,
    decoded_disk_bytes: int = DECODED_DISK_BYTES,
) -> tf.data.Dataset:
    """Batches of n-step transitions {observation, action, reward, discount, next_observation}.

    One per step with an action: `num_steps - num_episodes` per epoch. `reward` and
    `discount` follow `transforms.episode_transitions` (gamma^m is inside `discount`). A
    dataset stored as single frames (`stack` in its schema) gets its stacks rebuilt, padded at
    episode starts as Dopamine pads them (`rlstore.frames`).
    `decoded_cache_bytes` / `decoded_disk_bytes`: how much of an image or frame-stack version a repeating reader
    keeps decoded in RAM, then in temp files (module docstring).
    """
    to_rows = partial(episode_transitions, n_step=n_step, gamma=gamma)
    return _rows(store, ref, to_rows, batch_size=batch_size, shuffle=shuffle, seed=seed, repeat=repeat,
                 shuffle_buffer=shuffle_buffer, chunk_episodes=chunk_episodes,
                 decoded_cache_bytes=decoded_cache_bytes, decoded_disk_bytes=decoded_disk_bytes)


def sequences(
    store: Store,
    ref: str | DatasetRef,
    *,
    length: int,
    period: int,
    burn_in: int = 0,
    batch_size: int = 32,
    shuffle: bool = True,
    seed: int = 0,
    repeat: bool = True,
    is_demo: bool = False,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    chunk_episodes: int | None = None,
    decoded_cache_bytes: int = DECODED_CACHE_BYTES,
    decoded_disk_bytes: int = DECODED_DISK_BYTES,
) -> tf.data.Dataset:
    """Batches of [batch, burn_in + length, ...] step sequences with `mask` and `is_demo`
    (layout and padding as in `transforms.episode_sequences`).
    `decoded_cache_bytes` / `decoded_disk_bytes`: how much of an image or frame-stack version a repeating reader
    keeps decoded in RAM, then in temp files (module docstring)."""
    to_rows = partial(episode_sequences, length=length, period=period, burn_in=burn_in, is_demo=is_demo)
    return _rows(store, ref, to_rows, batch_size=batch_size, shuffle=shuffle, seed=seed, repeat=repeat,
                 shuffle_buffer=shuffle_buffer, chunk_episodes=chunk_episodes,
                 decoded_cache_bytes=decoded_cache_bytes, decoded_disk_bytes=decoded_disk_bytes)
