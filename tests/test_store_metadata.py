"""Version metadata: linear in what is committed, sealed and chained, old format readable."""
import json
import subprocess
import sys

import pytest

from rlstore import segment_lists
from rlstore.manifest import DamagedManifestError
from rlstore.store import Store
from rlstore.validation import validate
from tests.helpers import publish_episodes, vector_episode, write_format1

COMMITS = 23


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """A dataset of COMMITS one-episode versions, the way write-back commits."""
    store = Store(tmp_path_factory.mktemp("history"))
    for seed in range(COMMITS):
        publish_episodes(store, "ds", [vector_episode(3, seed)], {"pipeline": f"commit-{seed}"})
    return store


def _size(path):
    return path.stat().st_size


def test_every_version_lists_exactly_its_segments(history):
    ids = []
    for version in history.versions("ds"):
        manifest = history.manifest(f"ds@{version}")
        ids += [s["id"] for s in manifest.added]
        assert [s["id"] for s in manifest.segments] == ids
        assert manifest.num_episodes == version == manifest.num_segments
        assert not validate(history, f"ds@{version}", check_episodes=False)


def test_a_commit_writes_metadata_in_proportion_to_what_it_adds(history):
    directory = history.dataset_dir("ds")
    version_sizes = [_size(directory / "versions" / f"{v}.json") for v in history.versions("ds")]
    # a version file names at most (FANOUT - 1) lists per level: its size does not follow the history
    assert max(version_sizes) < 2 * min(version_sizes) < 12_000
    records = sum(len(json.dumps(s)) for s in history.manifest("ds").segments)
    lists = sum(_size(p) for p in (directory / segment_lists.DIRECTORY).iterdir())
    # each record is written once, then once per merge level reached (here two merges of ten)
    assert lists < 2.3 * records
    references = history.manifest("ds").data["segment_lists"]
    assert [r["level"] for r in references] == [1, 1, 0, 0, 0]


def test_a_flipped_byte_in_any_metadata_file_is_caught(tmp_path):
    store = Store(tmp_path)
    for seed in range(2):
        publish_episodes(store, "ds", [vector_episode(3, seed)])
    first = store.version_path("ds", 1)
    raw = bytearray(first.read_bytes())
    raw[raw.index(b'"num_steps":') + len(b'"num_steps":')] ^= 0x01  # 3 becomes 2: still valid JSON
    first.chmod(0o644)
    first.write_bytes(bytes(raw))
    with pytest.raises(DamagedManifestError, match="1.json.*checksum"):
        store.manifest("ds@1")
    assert any("differs from the file version 2 was built on" in p.reason for p in validate(store, "ds@2"))

    listing = next((tmp_path / "ds" / segment_lists.DIRECTORY).iterdir())
    listing.write_bytes(listing.read_bytes().replace(b'"num_steps":3', b'"num_steps":4', 1))
    problems = validate(store, "ds@2", check_episodes=False)
    assert any(p.file == str(listing) and "sha256" in p.reason for p in problems)


def test_format_1_stores_read_append_and_migrate(tmp_path):
    store = Store(tmp_path)
    for seed in range(3):
        publish_episodes(store, "ds", [vector_episode(3, seed)])
    for version in (1, 2, 3):
        write_format1(store, "ds", version)
    assert store.manifest("ds").format == "rlstore.version/1" and store.manifest("ds").num_segments == 3
    publish_episodes(store, "ds", [vector_episode(3, 3)])  # appending builds lists from the old version
    assert store.manifest("ds").format == "rlstore.version/2" and store.manifest("ds").num_episodes == 4
    before = [[s["id"] for s in store.manifest(f"ds@{v}").segments] for v in store.versions("ds")]

    result = subprocess.run([sys.executable, "-m", "rlstore", "--store", str(tmp_path), "migrate", "ds"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "migrated versions 1..4" in result.stdout, result.stderr
    assert [[s["id"] for s in store.manifest(f"ds@{v}").segments] for v in store.versions("ds")] == before
    for version in store.versions("ds"):
        manifest = store.manifest(f"ds@{version}")
        assert manifest.format == "rlstore.version/2"
        assert not validate(store, f"ds@{version}", check_episodes=version == 4)
    assert store.manifest("ds@2").data["migrated_from"]["format"] == "rlstore.version/1"
    assert len(list(store.load("ds"))) == 4
    assert store.migrate("ds").migrated == []


def test_compaction_publishes_the_same_episodes_in_fewer_segments(tmp_path):
    store = Store(tmp_path)
    for seed in range(7):
        publish_episodes(store, "ds", [vector_episode(3 + seed, seed)])
    before = store.manifest("ds")
    target = sum(s["shards"][0]["bytes"] for s in before.segments[:3])  # the first three fit in a group
    result = subprocess.run([sys.executable, "-m", "rlstore", "--store", str(tmp_path), "compact", "ds",
                             "--target-size", str(target)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "published ds@8" in result.stdout and "compacted from ds@7" in result.stdout
    after = store.manifest("ds")
    assert after.num_segments < before.num_segments and after.num_episodes == 7
    assert after.lineage["compacted_from"]["version"] == 7
    packed = [segment_id for s in after.added for segment_id in s["lineage"]["compacted_from"]]
    assert sorted(after.data["removed"]) == sorted(packed) and len(packed) > len(after.added)
    assert packed[:3] == [s["id"] for s in before.segments[:3]]
    assert sorted(int(e["episode_id"]) for e in store.load("ds")) == list(range(7))
    assert after.num_steps == before.num_steps and after.stats.returns.count == before.stats.returns.count
    for key, summary in before.stats.summary().items():  # merged in another grouping: equal up to rounding
        assert after.stats.summary()[key] == pytest.approx(summary, rel=1e-12)
    assert not validate(store, "ds")
    # the compacted version's segments are stock TFDS directories; older versions are unchanged
    assert sorted(int(e["episode_id"]) for e in store.builder("ds").as_dataset(split="train")) == list(range(7))
    assert not validate(store, "ds@7", check_episodes=False) and store.manifest("ds@7").num_segments == 7
    assert store.compact("ds", 1) is None
