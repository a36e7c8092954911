"""Paths read from store metadata never leave the dataset: crafted manifests, pending lists and
symlinks are reported or skipped, never followed or deleted."""
import json
import os
import subprocess
import sys

import pytest

from rlstore.confinement import ConfinedEntries, UnsafePathError, confine
from rlstore.store import Store
from rlstore.validation import validate
from tests.helpers import publish_episodes, vector_episode, write_format1

ESCAPES = ["/tmp", "../other", "segments/../../other", "..", "segments/../versions", "", "a\\..\\b"]


@pytest.mark.parametrize("relative", ESCAPES)
def test_confine_refuses_escapes(tmp_path, relative):
    with pytest.raises(UnsafePathError):
        confine(tmp_path, relative, what="path")


def test_confine_refuses_a_symlink_out(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "base" / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(UnsafePathError, match="outside"):
        confine(tmp_path / "base", "link", what="path")
    assert confine(tmp_path / "base", "inner/file", what="path") == (tmp_path / "base/inner/file").resolve()


def test_confined_entries_check_like_confine_with_the_directory_resolved_once(tmp_path):
    base = tmp_path / "base"
    (base / "segments" / "a").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (base / "segments" / "link").symlink_to(tmp_path / "outside")
    entries = ConfinedEntries(base, "segments")
    assert entries.path("segments/a", what="segment path") == confine(base, "segments/a", what="segment path")
    assert entries.path("segments/not-yet", what="segment path") == (base / "segments/not-yet").resolve()
    for escape in ("segments/link", "segments/..", "segments/a/b", "versions", "/tmp", "segments/../../x", None):
        with pytest.raises(UnsafePathError):
            entries.path(escape, what="segment path")
    (base / "segments").rename(tmp_path / "moved")
    (base / "segments").symlink_to(tmp_path / "moved")  # segments/ itself leads out of the dataset
    with pytest.raises(UnsafePathError):
        ConfinedEntries(base, "segments").path("segments/a", what="segment path")


def _victim(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    return victim


def _abandoned_staging(store_root, dataset, pending):
    area = store_root / dataset / "staging" / "dead-writer"
    area.mkdir(parents=True)
    (area / "pending.json").write_text(json.dumps(pending))
    return area


def _gc(store_root):
    return subprocess.run([sys.executable, "-m", "rlstore", "--store", str(store_root), "gc"],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "store")
    publish_episodes(store, "d", [vector_episode(5, 0)])
    return store


@pytest.mark.parametrize("entry", ["ABSOLUTE", "../../../victim", "..", "../versions", "link"])
def test_gc_never_deletes_outside_segments(tmp_path, store, entry):
    victim = _victim(tmp_path)
    segments = store.root / "d" / "segments"
    (segments / "link").symlink_to(victim)
    entry = str(victim) if entry == "ABSOLUTE" else entry
    area = _abandoned_staging(store.root, "d", [entry])

    result = _gc(store.root)

    assert result.returncode == 0, result.stderr
    assert (victim / "precious.txt").read_text() == "keep me"
    assert (store.root / "d" / "versions" / "1.json").is_file()
    assert not area.exists()
    assert "skipped" in result.stdout and "removed" in result.stdout
    assert store.segment_dirs("d")[0].is_dir()


def test_gc_leaves_symlinked_staging_and_foreign_directories_alone(tmp_path, store):
    victim = _victim(tmp_path)
    (store.root / "d" / "staging").mkdir(exist_ok=True)
    (store.root / "d" / "staging" / "evil").symlink_to(victim)
    (store.root / "lost+found").mkdir()
    (store.root / "escape").symlink_to(victim)

    result = _gc(store.root)

    assert result.returncode == 0, result.stderr
    assert (victim / "precious.txt").read_text() == "keep me"
    assert (store.root / "lost+found").is_dir()
    lines = result.stdout.splitlines()
    assert any("lost+found" in line and line.startswith("skipped") for line in lines)
    assert any("escape" in line and line.startswith("skipped") for line in lines)
    assert any("evil" in line and line.startswith("skipped") for line in lines)


def _rewrite_manifest(store, edit):
    """A crafted version file: format 1 (which has no checksum) listing every segment in full."""
    write_format1(store, "d", 1, edit)


@pytest.mark.parametrize("segment_path", ["ABSOLUTE", "../../victim", "segments/../../../victim", "versions", "segments/link"])
def test_manifest_segment_outside_is_a_finding_not_a_read(tmp_path, store, segment_path):
    victim = tmp_path / "victim"
    original = store.segment_dirs("d")[0]
    os.rename(original, victim)  # a complete, valid segment, now outside the store
    (store.root / "d" / "segments" / "link").symlink_to(victim)
    target = str(victim) if segment_path == "ABSOLUTE" else segment_path

    def point_outside(document):
        document["segments"][0]["path"] = target

    _rewrite_manifest(store, point_outside)

    problems = validate(store, "d")
    assert problems and all("segment path" in p.reason for p in problems)
    with pytest.raises(UnsafePathError):
        store.segment_dirs("d")
    info = subprocess.run([sys.executable, "-m", "rlstore", "--store", str(store.root), "info", "d"],
                          capture_output=True, text=True, timeout=120)
    assert info.returncode == 1 and "Traceback" not in info.stderr
    assert "segment path" in info.stderr and len(info.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("shard_file", ["/etc/passwd", "../../../../etc/passwd", "../other-segment/x"])
def test_manifest_shard_file_outside_is_a_finding(store, shard_file):
    def point_outside(document):
        document["segments"][0]["shards"][0]["file"] = shard_file

    _rewrite_manifest(store, point_outside)
    problems = validate(store, "d")
    assert len(problems) == 1 and "shard file" in problems[0].reason
    with pytest.raises(UnsafePathError):
        store.shard_paths("d")
