"""Parquet shards (`rlstore.shard_formats`): the same episodes as TFRecord shards for stock TFDS,
RLDS and every rlstore reader; validated, compacted, viewed and converted like them."""
import numpy as np
import pytest
import tensorflow as tf

from rlstore import reading
from rlstore import numpy as np_reading
from rlstore.errors import BadInputError, StoreError
from rlstore.info import describe
from rlstore.nest import flatten
from rlstore.publishing import SegmentBuilder
from rlstore.store import Store
from rlstore.validation import validate
from tests.format_fixtures import stock_read
from tests.helpers import frame_episode, frames_store


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """The same frame episodes stored once with TFRecord shards, once with parquet shards."""
    return {fmt: frames_store(tmp_path_factory.mktemp(fmt), fmt) for fmt in ("tfrecord", "parquet")}


def _tf_batches(dataset):
    return [flatten(tf.nest.map_structure(lambda t: t.numpy(), batch)) for batch in dataset]


def _assert_same_batches(first, second):
    assert len(first) == len(second) > 0
    for a, b in zip(first, second):
        assert sorted(a) == sorted(b)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_stock_tfds_and_rlds_read_a_parquet_version_with_the_same_frames(both):
    import rlds

    store, episodes = both["parquet"]
    manifest = store.manifest("frames")
    assert [s["shard_format"] for s in manifest.segments] == ["parquet", "parquet"]
    assert all(".parquet-00000-of-00001" in shard["file"] for s in manifest.segments for shard in s["shards"])
    assert store.builder("frames").info.file_format.value == "parquet"
    assert describe(store, "frames")["shard_format"] == "parquet"
    parquet = stock_read(store.segment_dirs("frames"))
    tfrecord = stock_read(both["tfrecord"][0].segment_dirs("frames"))
    assert len(parquet) == len(episodes) == len(tfrecord)
    for ours, theirs, original in zip(parquet, tfrecord, episodes):
        np.testing.assert_array_equal(ours["steps"]["observation"], original["steps"]["observation"])
        np.testing.assert_array_equal(ours["steps"]["observation"], theirs["steps"]["observation"])
    # RLDS's own transformations over the stock dataset: 2-step windows of single frames
    stock = store.builder("frames").as_dataset(split="train")
    windows = stock.flat_map(lambda e: rlds.transformations.batch(e["steps"], size=2, shift=1, drop_remainder=True))
    assert sum(1 for _ in windows) == sum(max(len(e["steps"]["reward"]) - 1, 0) for e in episodes)


@pytest.mark.parametrize("read", [
    lambda m, store: m.transitions(store, "frames", n_step=2, batch_size=3, shuffle=False, repeat=False),
    lambda m, store: m.sequences(store, "frames", length=3, period=2, burn_in=1, batch_size=2, shuffle=False,
                                 repeat=False),
])
def test_tf_and_numpy_readers_give_equal_batches_from_either_format(both, read):
    tfrecord, parquet = both["tfrecord"][0], both["parquet"][0]
    expected = _tf_batches(read(reading, tfrecord))
    assert expected[0]["observation"].shape[-3:] == (6, 5, 3)  # stacks rebuilt
    _assert_same_batches(expected, _tf_batches(read(reading, parquet)))
    _assert_same_batches(expected, list(read(np_reading, parquet)))


def test_shuffled_epochs_and_torch_batches_match_across_formats(both):
    from rlstore.torch import TransitionDataset

    tfrecord, parquet = both["tfrecord"][0], both["parquet"][0]
    shuffled = [_tf_batches(reading.transitions(store, "frames", n_step=3, batch_size=4, repeat=False, seed=5))
                for store in (tfrecord, parquet)]
    _assert_same_batches(*shuffled)
    torch_batches = [[{k: v.numpy() for k, v in flatten(batch).items()}
                      for batch in TransitionDataset(store.root, "frames", n_step=2, batch_size=4, seed=1)]
                     for store in (tfrecord, parquet)]
    _assert_same_batches(*torch_batches)


def test_validate_finds_a_damaged_parquet_shard(tmp_path):
    store, _ = frames_store(tmp_path / "store", "parquet")
    assert validate(store, "frames") == []
    segment = store.manifest("frames").segments[1]
    shard = store.segment_dir("frames", segment) / segment["shards"][0]["file"]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    [problem] = validate(store, "frames")
    assert problem.file == str(shard) and "sha256 differs" in problem.reason


def test_compaction_view_and_rlds_convert_keep_parquet(tmp_path):
    from rlstore.compaction import compact
    from rlstore.convert.common import convert
    from rlstore.pipelines.ingest import ingest
    from rlstore.view.index import Indexes

    store, episodes = frames_store(tmp_path / "store", "parquet")
    before = _tf_batches(reading.transitions(store, "frames", n_step=2, batch_size=3, shuffle=False, repeat=False))
    manifest = compact(store, "frames")
    assert len(manifest.segments) == 1 and manifest.segments[0]["shard_format"] == "parquet"
    assert validate(store, "frames") == []
    _assert_same_batches(before, _tf_batches(reading.transitions(store, "frames", n_step=2, batch_size=3,
                                                                 shuffle=False, repeat=False)))
    steps, _ = Indexes(store).episode(store.resolve("frames"), 4)
    np.testing.assert_array_equal(steps["observation"], episodes[4]["steps"]["observation"])

    # one plain parquet TFDS directory, which the rlds source ingests again
    convert(store, "frames", to="rlds", out=tmp_path / "rlds")
    assert [p.name for p in (tmp_path / "rlds").glob("*.parquet-*")] == ["frames-train.parquet-00000-of-00001"]
    again = Store(tmp_path / "again")
    ingest(again, "back", [str(tmp_path / "rlds")],
           beam_args=["--direct_num_workers=1", "--direct_running_mode=in_memory"])
    for ours, original in zip(stock_read(again.segment_dirs("back")), episodes, strict=True):
        np.testing.assert_array_equal(ours["steps"]["observation"], original["steps"]["observation"])


def test_a_version_keeps_one_shard_format(tmp_path):
    from rlstore.pipelines.ingest import _shard_format

    store, _ = frames_store(tmp_path / "store", "parquet")
    schema = store.manifest("frames").schema
    episode = frame_episode(3, seed=1)
    with store.staging("frames") as staging:
        segment = SegmentBuilder(store, "frames", staging, schema, shard_format="tfrecord")
        segment.write(schema.encode(episode), 3, 0.0)
        with pytest.raises(StoreError, match="stored as parquet shards, these segments as tfrecord"):
            segment.publish({"pipeline": "test"})
    assert store.manifest("frames").version == 2
    with store.staging("frames") as staging:  # a writer that names no format (write-back) keeps the dataset's
        segment = SegmentBuilder(store, "frames", staging, schema)
        segment.write(schema.encode(episode), 3, 0.0)
        assert segment.publish({"pipeline": "test"}).added[0]["shard_format"] == "parquet"
    assert validate(store, "frames") == []
    with pytest.raises(BadInputError, match="cannot append tfrecord shards to frames: its versions are stored as "
                                            "parquet"):
        _shard_format(store, "frames", "tfrecord", framed=True)
    assert _shard_format(store, "frames", None, framed=False) == "parquet"  # an append keeps the format
    assert _shard_format(store, "new", None, framed=True) == "parquet"
    assert _shard_format(store, "new", None, framed=False) == "tfrecord"


def test_the_shuffle_buffer_of_parquet_records_is_bounded_in_bytes(both, monkeypatch):
    from rlstore import shard_formats

    parquet = both["parquet"][0].shard_paths("frames")
    tfrecord = both["tfrecord"][0].shard_paths("frames")
    assert shard_formats.bounded_shuffle_buffer(parquet, 256) == 256  # 6 small episodes fit
    sizes = [len(record) for path in parquet
             for record in shard_formats.read_bytes_records(path.read_bytes(), str(path))]
    monkeypatch.setattr(shard_formats, "SHUFFLE_BUFFER_BYTES", 2 * sum(sizes) // len(sizes))
    assert 1 <= shard_formats.bounded_shuffle_buffer(parquet, 256) <= 2
    assert shard_formats.bounded_shuffle_buffer(tfrecord, 256) == 256
