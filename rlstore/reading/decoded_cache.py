"""Where a repeating reader keeps an image version once decoded: in RAM, partly in local temp
files, or nowhere (decoded again every epoch).

Decoding is most of an image reader's cost, every epoch: ~100 us per 128x128x3 JPEG (~2.4 of
them per 8-step window), and for frame stacks stored once (`rlstore.frames`) ~12 us per step to
read a parquet row and inflate its frame, a third of a stacked transition's cost. So a repeating
reader decodes a version once and serves later epochs from the decoded chunks, as tf.data's
`Dataset.cache` and TFDS's "cache after decoding" advice do:
  * all in RAM (`Dataset.cache()`) when the version decodes to at most `ram_bytes`
    (`decoded_cache_bytes`, default 512 MB);
  * else chunks in RAM up to `ram_bytes` and the rest spilled to files, one raw file per
    tensor of a chunk (`.npy` for numbers, serialized tensors for text), when that rest is at
    most `disk_bytes` (`decoded_disk_bytes`, default 4 GiB) and at most half the free space
    there. The files go in a fresh `rlstore-decoded-*` directory under the system temp dir
    (`tempfile.gettempdir()`, so `TMPDIR` moves it; never inside the store). The first epoch
    writes them; later epochs map them into memory, so a spilled chunk is served by the OS page
    cache without a read or a copy: ~35 us more CPU than a chunk kept in RAM per 8-step window
    of two 128x128x3 cameras (TensorFlow's own `Dataset.cache(filename)` files cost ~75 us: a
    read, a checksum and a copy), against ~290 us to decode it, while the reader's own memory
    stays the RAM budget plus a few chunks however large the version. The directory goes when the dataset
    and every iterator over it are gone, or at the latest when the process exits (a killed
    process leaves it behind in the temp dir);
  * nowhere otherwise.
What the first iterator to finish its first epoch kept serves every later iterator over the
same dataset object; iterators whose first epochs overlap each write files of their own.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from typing import NoReturn

import numpy as np
import tensorflow as tf

from rlstore.chunks import decoded_step_bytes
from rlstore.images import IMAGE_FORMATS
from rlstore.manifest import Manifest

RAM_BYTES = 512 << 20
DISK_BYTES = 4 << 30


def decoded_bytes(manifest: Manifest) -> int:
    """Bytes of the whole version decoded (images as pixels)."""
    return decoded_step_bytes(manifest) * manifest.num_steps


def placement(manifest: Manifest, per_chunk: int, ram_bytes: int, disk_bytes: int) -> str | None:
    """Where a repeating reader keeps its decoded chunks: 'memory' (all in RAM), 'disk' (in RAM
    up to `ram_bytes`, the rest in temp files) or None (decoded every epoch).

    Only versions with PNG/JPEG images or frame stacks, whose decoding costs as much as the rest
    of the reader or more (vector steps decode faster than a cache hands them back), and only
    when they fill at least one chunk of `per_chunk` episodes: kept chunks hold one
    epoch's episodes, while a repeating reader's chunks otherwise run across epochs, and a
    chunk with fewer rows than a batch yields no batch (a version smaller than one batch would
    then repeat forever yielding nothing)."""
    costly = any(spec.encoding in IMAGE_FORMATS or spec.stack > 1 for spec in manifest.schema.steps.values())
    if not costly or manifest.num_episodes < per_chunk:
        return None
    size = decoded_bytes(manifest)
    if size <= ram_bytes:
        return "memory"
    spilled = size - ram_bytes
    if spilled <= disk_bytes and spilled <= shutil.disk_usage(tempfile.gettempdir()).free // 2:
        return "disk"
    return None


def repeated(chunks: tf.data.Dataset, where: str, count: int, shuffle: bool, seed: int,
             ram_bytes: int) -> tuple[tf.data.Dataset, str | None]:
    """`chunks` (one epoch's `count` decoded chunks) forever: the first epoch decodes them and
    keeps them where `placement` said, every later one serves the kept chunks in a new order
    (if `shuffle`). Also returns the temp directory holding spilled files (if any), for
    `remove_with`.

    Spilling keeps chunks in RAM until they add up to `ram_bytes` and writes the rest to files
    of their own (`_written`: a single file would read only front to back, and shuffling its
    chunks would need a buffer holding all of them). The RAM cache then holds
    the kept chunks and an empty stand-in for each spilled one, so the chunk order can be
    shuffled in RAM, and the stand-ins are read back from their files after the shuffle. Each
    iterator writes files of its own (numbered in `owners`): two iterators draw their chunks in
    different orders, so one's files cannot complete another's kept chunks."""
    kept = chunks.cache() if where == "memory" else None
    directory = None
    if kept is None:
        directory = tempfile.mkdtemp(prefix="rlstore-decoded-")
        with tf.init_scope():
            owners = tf.Variable(0, dtype=tf.int64, trainable=False)

        def mark(state, item):
            total, owner = state
            index, chunk = item
            owner = tf.cond(owner < 0, lambda: owners.assign_add(1), lambda: owner)
            total += _nbytes(chunk)
            prefix = tf.strings.join([directory, "/", tf.strings.as_string(owner), "-", tf.strings.as_string(index)])
            return (total, owner), (prefix, total > ram_bytes, chunk)

        def spill(prefix, on_disk, chunk):
            return prefix, on_disk, tf.cond(on_disk, lambda: _stand_in(_written(chunk, prefix)), lambda: chunk)

        kept = (chunks.enumerate().scan((tf.constant(0, tf.int64), tf.constant(-1, tf.int64)), mark)
                .map(spill, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).cache())
    if shuffle:
        kept = kept.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    kept = kept.repeat()
    if directory is None:
        return kept, None
    return kept.map(_unspilled, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True), directory


def _nbytes(chunk) -> tf.Tensor:
    """Bytes of a decoded chunk's tensors (text counted by its characters)."""
    sizes = [tf.reduce_sum(tf.cast(tf.strings.length(leaf), tf.int64)) if leaf.dtype == tf.string else
             tf.size(leaf, out_type=tf.int64) * leaf.dtype.size for leaf in tf.nest.flatten(chunk)]
    return tf.add_n(sizes)


def _written(chunk, prefix: tf.Tensor):
    """`chunk`, once each of its tensors is in a file of its own (`prefix-<leaf number>`):
    numbers as `.npy` files, which `_unspilled` maps into memory instead of reading them,
    text as serialized tensors. Scalars stay with the stand-in."""
    writes = []
    for number, leaf in enumerate(tf.nest.flatten(chunk)):
        if not leaf.shape.rank:
            continue
        path = _leaf_path(prefix, number)
        if leaf.dtype == tf.string:
            writes.append(tf.io.write_file(path, tf.io.serialize_tensor(leaf)))
        else:
            writes.append(tf.numpy_function(_save, [path, leaf], tf.bool))
    with tf.control_dependencies(writes):
        return tf.nest.map_structure(tf.identity, chunk)


def _leaf_path(prefix: tf.Tensor, number: int) -> tf.Tensor:
    return tf.strings.join([prefix, f"-{number}"])


def _save(path: bytes, array: np.ndarray) -> bool:
    with open(path, "wb") as file:
        np.save(file, array, allow_pickle=False)
    return True


def _mapped(path: bytes) -> np.ndarray:
    """The array in the `.npy` file at `path`, memory-mapped: TensorFlow wraps it without a
    copy (an `.npy` header keeps the data 64-byte aligned), so a spilled chunk costs page-cache
    hits instead of a read, a checksum and a copy (TensorFlow's own cache files cost ~5 ms of CPU
    per 16 MB chunk more). Copy-on-write, so no op that reuses its input's buffer can write to
    the file."""
    try:
        return np.load(path.decode(), mmap_mode="c", allow_pickle=False)
    except FileNotFoundError:
        _missing(path)


def _serialized(path: bytes) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except FileNotFoundError:
        _missing(path)


def _missing(path: bytes) -> NoReturn:
    """A spilled file is gone. Its directory goes with its reader (`remove_with`), but tf.data's
    background threads can still be reading ahead for a moment after that: they end quietly
    (StopIteration is an unlogged end of input). Gone while its reader lives, it is an error."""
    name = path.decode()
    if os.path.dirname(name) in _removed:
        raise StopIteration
    raise FileNotFoundError(f"a decoded chunk's file is gone: {name}")


def _stand_in(chunk):
    """An empty chunk of the same structure, dtypes and ranks, kept in RAM for a spilled one.
    New tensors, not `leaf[:0]`: a slice shares its tensor's buffer, so it would keep the
    whole spilled chunk in RAM."""
    return tf.nest.map_structure(
        lambda leaf: tf.zeros(tf.concat([[0], tf.shape(leaf)[1:]], 0), leaf.dtype) if leaf.shape.rank else leaf, chunk)


def _unspilled(prefix: tf.Tensor, on_disk: tf.Tensor, chunk):
    """The chunk itself: kept in RAM, or its tensors from their files (`_written`), shaped like
    the stand-in it is given but for the first axis."""
    def read():
        leaves = []
        for number, leaf in enumerate(tf.nest.flatten(chunk)):
            if leaf.shape.rank:
                path = _leaf_path(prefix, number)
                stored = (tf.io.parse_tensor(tf.numpy_function(_serialized, [path], tf.string, stateful=False),
                                             tf.string) if leaf.dtype == tf.string else
                          tf.numpy_function(_mapped, [path], leaf.dtype, stateful=False))
                leaf = tf.ensure_shape(stored, [None, *leaf.shape[1:]])
            leaves.append(leaf)
        return tf.nest.pack_sequence_as(chunk, leaves)

    return tf.cond(on_disk, read, lambda: chunk)


def remove_with(dataset: tf.data.Dataset, directory: str | None) -> tf.data.Dataset:
    """`dataset`, with `directory` removed once it is garbage (every iterator holds its
    dataset) or when this process exits; a forked child's exit leaves it to its parent."""
    if directory is not None:
        weakref.finalize(dataset, _remove, directory, os.getpid())
    return dataset


def _remove(directory: str, owner: int) -> None:
    if os.getpid() == owner:
        _removed.add(directory)
        shutil.rmtree(directory, ignore_errors=True)


_removed: set[str] = set()  # spill directories whose readers are gone (`_missing`)
