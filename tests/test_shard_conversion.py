"""`rlstore convert NAME --to parquet|tfrecord`: the latest version's episodes published again in
the other shard container. Records are copied byte for byte (JPEGs, splits and all), frames
stored once are re-encoded (raw in parquet, zlib in TFRecord) and read back as the same stacks;
stock TFDS reads the new version; earlier versions stay as they were."""
from __future__ import annotations

import numpy as np
import pytest

from rlstore.cli import main
from rlstore.compaction import segment_records
from rlstore.pipelines.ingest import ingest
from rlstore.store import Store
from rlstore.validation import validate
from tests import camera_fixtures as cf
from tests.format_fixtures import stock_read
from tests.helpers import frames_store

BEAM = ["--direct_num_workers=1", "--direct_running_mode=in_memory"]


def _records_by_split(store: Store, ref: str) -> dict[str, list[bytes]]:
    name = ref.split("@")[0]
    found: dict[str, list[bytes]] = {}
    for segment in store.manifest(ref).segments:
        for shard, records in segment_records(store, name, segment):
            found.setdefault(shard.get("split", "train"), []).extend(records)
    return found


def _stacks(store: Store, ref: str) -> np.ndarray:
    from rlstore.reading import steps

    [batch] = steps(store, ref, batch_size=1000, shuffle=False, repeat=False)
    return batch["observation"].numpy()


def test_frames_go_to_parquet_and_back_and_read_as_the_same_stacks(tmp_path, capsys):
    store, episodes = frames_store(tmp_path, "tfrecord")
    before = _stacks(store, "frames@2")
    assert main(["--store", str(tmp_path), "convert", "frames", "--to", "parquet"]) == 0
    assert "published frames@3: frames@2's 6 episodes in parquet shards" in capsys.readouterr().out
    manifest = store.manifest("frames@3")
    assert {s["shard_format"] for s in manifest.segments} == {"parquet"} and manifest.num_segments == 2
    assert manifest.schema.steps["observation"].encoding == "bytes"  # raw frames, zstd over the episode
    assert (manifest.num_episodes, manifest.num_steps, manifest.stats) == \
        (store.manifest("frames@2").num_episodes, store.manifest("frames@2").num_steps, store.manifest("frames@2").stats)
    assert np.array_equal(_stacks(store, "frames@3"), before)
    assert [e["steps"]["observation"].tobytes() for e in stock_read(store.segment_dirs("frames@3"))] == \
        [e["steps"]["observation"].tobytes() for e in episodes]
    assert validate(store, "frames") == [] and validate(store, "frames@2") == []  # the old version untouched

    assert main(["--store", str(tmp_path), "convert", "frames", "--to", "tfrecord"]) == 0
    assert store.manifest("frames@4").schema == store.manifest("frames@2").schema
    assert np.array_equal(_stacks(store, "frames@4"), before)


def test_other_records_are_copied_byte_for_byte_split_by_split(tmp_path):
    directory, _ = cf.write_camera_dataset(tmp_path / "source")
    store = Store(tmp_path / "store")
    ingest(store, "cams", [str(directory)], beam_args=BEAM)
    assert main(["--store", str(tmp_path / "store"), "convert", "cams", "--to", "parquet"]) == 0
    assert store.manifest("cams@2").schema == store.manifest("cams@1").schema
    assert _records_by_split(store, "cams@2") == _records_by_split(store, "cams@1")  # JPEGs untouched
    import tensorflow_datasets as tfds

    stock = tfds.builder_from_directories([str(p) for p in store.segment_dirs("cams@2")])
    assert {split: info.num_examples for split, info in stock.info.splits.items()} == \
        {split: len(records) for split, records in _records_by_split(store, "cams@1").items()}
    assert len(list(stock.as_dataset(split="val"))) == stock.info.splits["val"].num_examples
    assert validate(store, "cams") == []


@pytest.mark.parametrize("args, problem", [
    (["frames", "--to", "tfrecord"], "frames@2 is already stored as tfrecord shards"),
    (["frames@1", "--to", "parquet"], "converts the latest version (frames@2), not frames@1"),
    (["frames", "--to", "parquet", "--out", "x"], "takes no --out"),
    (["frames", "--to", "rlds"], "--to rlds needs --out"),
])
def test_bad_conversions_say_why_in_one_line(tmp_path, capsys, args, problem):
    store, _ = frames_store(tmp_path, "tfrecord")
    assert main(["--store", str(tmp_path), "convert", *args]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and problem in err, err
    assert store.versions("frames") == [1, 2]
