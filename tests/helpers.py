"""Small data builders shared by the tests (real episodes, real files; nothing mocked)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Hashable, Mapping, Sequence

import numpy as np

from rlstore import publishing, tfrecord
from rlstore.shard_formats import frame_encoding
from rlstore.episode import Episode, make_episode
from rlstore.schema import Schema
from rlstore.store import Store


def vector_episode(length: int, seed: int, terminal: bool = True) -> Episode:
    """An episode with a 4-float observation and a discrete action, like the benchmark's."""
    rng = np.random.default_rng(seed)
    discount = np.ones(length, np.float32)
    if terminal and length >= 2:
        discount[-2] = 0.0
    return make_episode(
        observation=rng.normal(size=(length, 4)).astype(np.float32),
        action=rng.integers(0, 3, size=length),
        reward=rng.normal(size=length).astype(np.float32),
        discount=discount,
        is_terminal=terminal,
        episode_metadata={"episode_id": np.int64(seed)},
    )


def rich_episode(length: int, seed: int) -> Episode:
    """Nested dict observation with an image, continuous actions, step and episode metadata."""
    rng = np.random.default_rng(seed)
    discount = np.ones(length, np.float32)
    return make_episode(
        observation={"pixels": rng.integers(0, 255, size=(length, 6, 5, 3), dtype=np.uint8),
                     "state": {"pos": rng.normal(size=(length, 2)).astype(np.float32),
                               "mode": rng.integers(0, 4, size=length).astype(np.int32)}},
        action=rng.uniform(-1, 1, size=(length, 2)).astype(np.float32),
        reward=rng.normal(size=length).astype(np.float32),
        discount=discount,
        is_terminal=False,
        step_metadata={"temperature": rng.normal(size=length).astype(np.float64)},
        episode_metadata={"episode_id": np.int64(seed), "task": np.bytes_(b"reach")},
    )


def frame_episode(length: int, seed: int, terminal: bool = True) -> Episode:
    """An episode of single 6x5 uint8 frames (never all zero, so stack padding shows)."""
    rng = np.random.default_rng(seed)
    discount = np.ones(length, np.float32)
    if terminal and length >= 2:
        discount[-2] = 0.0
    return make_episode(
        observation=rng.integers(1, 256, size=(length, 6, 5), dtype=np.uint8),
        action=rng.integers(0, 3, size=length),
        reward=rng.normal(size=length).astype(np.float32),
        discount=discount,
        is_terminal=terminal,
        episode_metadata={"episode_id": np.int64(seed)},
    )


def publish_frames(store: Store, name: str, episodes: Sequence[Episode], stack: int, shard_format: str = "tfrecord"):
    """Publishes episodes of single frames as one new segment whose schema says readers stack
    `stack` of them (what ingest with `--frame-stack` stores): zlib frames in TFRecord shards,
    or raw frames in zstd parquet shards."""
    schema = Schema.derive(episodes[0]).with_frames("observation", stack, frame_encoding(shard_format))
    publishing.check_appendable(store, name, schema)
    with store.staging(name) as staging:
        segment = publishing.SegmentBuilder(store, name, staging, schema, shard_format=shard_format)
        for episode in episodes:
            segment.write(schema.encode(episode), schema.check(episode), float(np.sum(episode["steps"]["reward"])))
        return segment.publish({"pipeline": "test"})


def frames_store(root: Path, shard_format: str = "tfrecord") -> tuple[Store, list[Episode]]:
    """A store whose dataset 'frames' holds single 6x5 frames stacked by 3 on reading, in two
    segments (episodes of 1 to 9 steps, terminal and time-limited) of `shard_format`, and its
    episodes."""
    store = Store(root)
    frames = [frame_episode(length, seed=20 + i, terminal=i % 2 == 1) for i, length in enumerate((5, 1, 9, 2, 7, 4))]
    publish_frames(store, "frames", frames[:4], stack=3, shard_format=shard_format)
    publish_frames(store, "frames", frames[4:], stack=3, shard_format=shard_format)
    return store, frames


def write_npz_logs(directory: Path, episodes: Sequence[Episode]) -> list[Path]:
    from rlstore.pipelines.sources.npz import write_episode

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, episode in enumerate(episodes):
        path = directory / f"episode_{index:04d}.npz"
        write_episode(path, episode)
        paths.append(path)
    return paths


def publish_episodes(store: Store, name: str, episodes: Sequence[Episode], lineage: dict | None = None):
    """Publishes episodes as one new segment through the store API (no Beam)."""
    return publishing.publish_episodes(store, name, episodes, lineage or {"pipeline": "test"})


def write_format1(store: Store, name: str, version: int, edit=None) -> None:
    """Rewrites a version file as rlstore's format 1 wrote it (every segment in full, no
    checksum), optionally edited: stores made before format 2, and crafted manifests."""
    import json

    manifest = store.manifest(f"{name}@{version}")
    dropped = ("parent", "added", "removed", "segment_lists", "num_segments", "checksum")
    document = {key: value for key, value in manifest.data.items() if key not in dropped}
    document.update(format="rlstore.version/1", segments=manifest.segments)
    if edit is not None:
        edit(document)
    path = store.version_path(name, version)
    path.chmod(0o644)
    path.write_text(json.dumps(document, sort_keys=True))


def steps_equal(expected: Episode, actual_steps: dict) -> bool:
    """Compares every step field of an in-memory episode with decoded steps (dict of arrays)."""
    from rlstore.nest import flatten

    want, got = flatten(expected["steps"]), flatten(actual_steps)
    if set(want) != set(got):
        return False
    return all(np.array_equal(np.asarray(want[k]), np.asarray(got[k])) for k in want)


def reference_example(features: Mapping[str, bytes]) -> bytes:
    """A tf.train.Example from encoded Feature messages keyed by name, written plainly one entry at a
    time: the oracle `rlstore.encoding`'s fast layout is checked against (and TF parses it)."""
    entries = b"".join(tfrecord.field(1, tfrecord.field(1, key.encode()) + tfrecord.field(2, feature))
                       for key, feature in sorted(features.items()))
    return tfrecord.field(1, entries)


def reference_encode(schema: Schema, episode: Episode) -> bytes:
    """`schema.encode(episode)` the slow, obvious way: each field's Feature by `encode_feature`."""
    from rlstore.encoding import encode_feature
    from rlstore.nest import flatten

    steps, metadata = flatten(episode["steps"]), flatten({k: v for k, v in episode.items() if k != "steps"})
    features = {f"steps/{key}": encode_feature(spec, np.asarray(steps[key]), per_step=True)
                for key, spec in schema.steps.items()}
    features.update({key: encode_feature(spec, np.asarray(metadata[key]), per_step=False)
                     for key, spec in schema.episode.items()})
    return reference_example(features)


def bucket_keys(url: str, under: str = "") -> list[str]:
    """Keys of the objects under `under` of an `s3://bucket/prefix` store, relative to the prefix
    (read with boto3, not through the store)."""
    import boto3

    from rlstore.fs import split_url

    _, bucket, prefix = split_url(url)
    listing = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/{under}")
    return sorted(item["Key"][len(prefix) + 1:] for item in listing.get("Contents", []))


def assert_epochs(rows: Sequence[Hashable], epoch: Counter, epochs: int) -> None:
    """`rows`, `epochs` epochs' worth of a repeating reader's rows (batches of 1), hold each
    row of `epoch` about `epochs` times, and the second epoch's order is a new one. About: the
    readers interleave two chunks at a time, so one chunk's rows may run on into the next
    epoch; each row's count may then be one epoch off, never more."""
    size = sum(epoch.values())
    assert len(rows) == epochs * size
    counts = Counter(rows)
    assert set(counts) == set(epoch)  # nothing else, nothing lost
    assert all((epochs - 1) * epoch[row] <= counts[row] <= (epochs + 1) * epoch[row] for row in epoch)
    assert rows[:size] != rows[size:2 * size]
