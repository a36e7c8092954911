"""Where a repeating reader keeps a PNG/JPEG version once decoded: in RAM, in a local temp file,
or nowhere (decoded again every epoch).

Decoding images is most of an image reader's cost (~100 us per 128x128x3 JPEG, ~2.4 of them per
8-step window, every epoch), so a repeating reader decodes a version once and serves later
epochs from the decoded chunks, as tf.data's `Dataset.cache` and TFDS's "cache after decoding"
advice do:
  * in RAM (`Dataset.cache()`) when the version decodes to at most `ram_bytes`
    (`decoded_cache_bytes`, default 512 MB);
  * else in a file (`Dataset.cache(filename)`: TensorFlow's tensor bundle, the raw decoded
    tensors) in a fresh directory under the system temp dir (`tempfile.gettempdir()`, so
    `TMPDIR` moves it; never inside the store) when it decodes to at most `disk_bytes`
    (`decoded_disk_bytes`, default 4 GiB) and to at most half that file system's free space.
    The first epoch writes it, later epochs read it back: a file read and a copy, several times
    cheaper than decoding, served by the OS page cache at near-RAM speed where it fits, while
    the reader's own resident memory stays that of a few chunks however large the version.
    The directory goes when the dataset and every iterator over it are gone, or at the latest
    when the process exits (a killed process leaves `rlstore-decoded-*` behind in the temp dir);
  * nowhere otherwise, and for frame stacks (raw frames inflate at a few us each).
The file is one per dataset object: the first iterator writes it and later ones read it, so
a dataset is decoded once however often it is iterated. While that first epoch is being
written, a second iterator over the same dataset object fails with TensorFlow's "concurrent
caching iterator" error: build one reader per concurrent iterator.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from functools import partial

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
    """'memory', 'disk' or None (decoded every epoch) for a repeating reader's decoded chunks.

    Only versions with PNG/JPEG images, whose decoding costs more than the rest of the reader,
    and only when they fill at least one chunk of `per_chunk` episodes: kept chunks hold one
    epoch's episodes, while a repeating reader's chunks otherwise run across epochs, and a
    chunk with fewer rows than a batch yields no batch (a version smaller than one batch would
    then repeat forever yielding nothing)."""
    images = any(spec.encoding in IMAGE_FORMATS for spec in manifest.schema.steps.values())
    if not images or manifest.num_episodes < per_chunk:
        return None
    size = decoded_bytes(manifest)
    if size <= ram_bytes:
        return "memory"
    if size <= disk_bytes and size <= shutil.disk_usage(tempfile.gettempdir()).free // 2:
        return "disk"
    return None


def repeated(chunks: tf.data.Dataset, where: str, count: int, shuffle: bool,
             seed: int) -> tuple[tf.data.Dataset, str | None]:
    """`chunks` (one epoch's `count` decoded chunks) forever: the first epoch decodes them and
    keeps them where `placement` said, every later one serves the kept chunks in a new order
    (if `shuffle`). Also returns the temp directory holding the files (if any), for
    `remove_with`."""
    if where == "memory":
        kept = chunks.cache()
        return (kept.shuffle(count, seed=seed, reshuffle_each_iteration=True) if shuffle else kept).repeat(), None
    directory = tempfile.mkdtemp(prefix="rlstore-decoded-")
    order = tf.data.Dataset.range(count)
    if shuffle:
        order = order.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    written = chunks.enumerate().flat_map(lambda index, chunk: tf.data.Dataset.from_tensors(chunk).cache(
        _chunk_file(directory, index)))
    read = order.interleave(partial(_read_chunk, chunks, directory), cycle_length=2, num_parallel_calls=tf.data.AUTOTUNE,
                            deterministic=True)
    return written.concatenate(read.repeat()), directory


def _chunk_file(directory: str, index: tf.Tensor) -> tf.Tensor:
    """The file prefix of decoded chunk `index`: one `Dataset.cache` file of one element each,
    so that later epochs can read the chunks in any order (a single cache file reads only
    front to back, and shuffling its chunks would need a buffer holding all of them)."""
    return tf.strings.join([directory, "/chunk-", tf.strings.as_string(index)])


def _read_chunk(chunks: tf.data.Dataset, directory: str, index: tf.Tensor) -> tf.data.Dataset:
    """Decoded chunk `index`, read back from its file. `chunks` is only its element spec: a
    complete cache file is read without touching the cached dataset (`take(0)`, never run). A
    missing file would silently cache nothing, so its absence is an error."""
    prefix = _chunk_file(directory, index)
    found = tf.size(tf.io.matching_files(tf.strings.join([prefix, ".index"])))
    with tf.control_dependencies([tf.debugging.assert_equal(found, 1, message="rlstore: a decoded chunk's file is gone")]):
        prefix = tf.identity(prefix)
    return chunks.take(0).cache(prefix)


def remove_with(dataset: tf.data.Dataset, directory: str | None) -> tf.data.Dataset:
    """`dataset`, with `directory` removed once it is garbage (every iterator holds its
    dataset) or when this process exits; a forked child's exit leaves it to its parent."""
    if directory is not None:
        weakref.finalize(dataset, _remove, directory, os.getpid())
    return dataset


def _remove(directory: str, owner: int) -> None:
    if os.getpid() == owner:
        shutil.rmtree(directory, ignore_errors=True)
