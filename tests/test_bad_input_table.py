"""Bad input, as a table: every kind goes through the real CLI and must end the same way.

For each row: exit status 1; exactly one line on stderr, `error: ...`, naming the file (and the
episode, step and field where they apply); no traceback; nothing published (the dataset's
versions are what they were) and nothing left in staging or in `segments/` that no version
refers to; a first ingest that fails leaves no dataset directory behind.

Rows run in-process through `rlstore.cli.main` (the Beam pipeline still runs its real worker
processes); rows that need the process itself constrained (a file size limit, no permission to
write) run the `rlstore` console script in a child process, whose stderr is the real one.
"""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from rlstore.cli import main
from rlstore.schema import Schema
from rlstore.segment import ShardWriter, finish_segment
from rlstore.store import Store
from tests.helpers import publish_episodes, vector_episode, write_npz_logs

RLSTORE = str(Path(sys.executable).with_name("rlstore"))
ONE_WORKER = ["--", "--direct_num_workers=1"]


@dataclass
class Case:
    """One row: the command, what its one line must contain, and the dataset it must not touch."""

    argv: list[str]
    expected: tuple[str, ...]
    dataset: str = "ds"
    child: list[str] | None = None  # run as a child process, its command prefixed by these
    during: Callable | None = None  # called in a thread while the command runs
    extra: list[str] = field(default_factory=list)


# ---- shared data, built once ---------------------------------------------------------------

@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A template store (`ds` with 2 versions, `other` with 1), npz logs and an RLDS source of
    20 episodes in 3 shards, with the per-shard counts in its TFDS metadata."""
    base = tmp_path_factory.mktemp("bad_input_table")
    store = Store(base / "store")
    publish_episodes(store, "ds", [vector_episode(6, i) for i in range(3)])
    publish_episodes(store, "ds", [vector_episode(7, i) for i in range(3, 5)])
    publish_episodes(store, "other", [vector_episode(5, 9)])
    logs = base / "logs"
    logs.mkdir()
    for i in range(3):
        _save_npz(logs / f"a{i}.npz", vector_episode(5, i))
    write_npz_logs(base / "appendable", [vector_episode(5, i) for i in range(20, 22)])  # ds's schema
    rlds = base / "rlds"
    rlds.mkdir()
    episodes = [vector_episode(5 + i, i) for i in range(20)]
    schema = Schema.derive(episodes[0])
    writer = ShardWriter(rlds, max_shard_bytes=4000)
    for episode in episodes:
        writer.write(schema.encode(episode), schema.check(episode), 0.0)
    shards = writer.close()
    assert len(shards) == 3
    finish_segment(rlds, "src", schema, shards, {})
    return base


def _save_npz(path: Path, episode, **override) -> Path:
    steps = episode["steps"]
    arrays = {"observation": steps["observation"], "action": steps["action"], "reward": steps["reward"],
              "discount": steps["discount"], **override}
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def _npz(tmp: Path, name: str, length: int = 5, **override) -> str:
    """A directory of good npz logs plus one bad file; returns the bad file's path."""
    logs = tmp / "in"
    if not logs.exists():
        logs.mkdir()
        for i in range(2):
            _save_npz(logs / f"good{i}.npz", vector_episode(5, i))
    steps = vector_episode(max(length, 2), 7)["steps"]
    arrays = {key: steps[key][:length] for key in ("observation", "action", "reward", "discount")}
    np.savez(logs / name, **{k: v for k, v in {**arrays, **override}.items() if v is not None})
    return str(logs / name)


def _records(path: Path) -> list[int]:
    """Byte offsets where each TFRecord record of a file ends."""
    data, ends, offset = path.read_bytes(), [], 0
    while offset < len(data):
        (length,) = struct.unpack("<Q", data[offset:offset + 8])
        offset += 16 + length
        ends.append(offset)
    return ends


def _cut_shard(tmp: Path, data: Path, size: Callable[[Path], int]) -> tuple[str, str]:
    source = tmp / "rlds"
    shutil.copytree(data / "rlds", source)
    shard = sorted(source.glob("*.tfrecord-*"))[1]
    with open(shard, "r+b") as stream:
        stream.truncate(size(shard))
    return str(source), str(shard)


def _flip_byte(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x55
    path.write_bytes(bytes(raw))


def _no_write_permission(*paths: Path) -> list[str]:
    """Takes write permission away from `paths` for the child process (see `_privileges`)."""
    for path in paths:
        for directory, _, files in os.walk(path):
            os.chmod(directory, 0o555)
            for name in files:
                os.chmod(os.path.join(directory, name), 0o444)
    return []


def _restore_permissions(path: Path) -> None:
    for directory, _, _ in os.walk(path):
        os.chmod(directory, 0o755)


_LIMITED_EXEC = """
import os, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
os.execv(sys.argv[2], sys.argv[2:])
"""


def _file_size_limit(limit: int) -> list[str]:
    """The child process may write no file larger than `limit` bytes; a write past it fails with
    EFBIG (SIGXFSZ ignored), as a full disk fails with ENOSPC. A small exec wrapper sets this
    up, not a `preexec_fn`: forking this many-threaded test process and running Python before
    `exec` can abort the child under load."""
    return [sys.executable, "-c", _LIMITED_EXEC, str(limit)]


def _delete_when_running(store: Path, victim: Path) -> Callable:
    """Deletes `victim` as soon as the ingest's staging area exists (the pipeline is about to
    start), long before a Beam worker process is up to read it."""
    def delete() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if list(store.glob("*/staging/*")):
                shutil.rmtree(victim)
                return
            time.sleep(0.01)
    return delete


# ---- the table -----------------------------------------------------------------------------

def _ingest(*args: str) -> list[str]:
    return ["ingest", "--dataset", *args]


def _cases(tmp: Path, data: Path) -> dict[str, Callable[[], Case]]:
    store = tmp / "store"
    logs = str(data / "logs")
    versions = store / "ds" / "versions"

    def segment_of(version: int) -> Path:
        return Store(store).segment_dirs(f"ds@{version}")[-1]

    def shard_cut(size, *expected, skip=False):
        source, shard = _cut_shard(tmp, data, size)
        return Case(_ingest("new", "--format", "rlds", source, *ONE_WORKER), (shard, *expected), "new")

    return {
        # names and references
        "name with /": lambda: Case(_ingest("a/b", logs), ("invalid dataset name 'a/b'",), "a"),
        "name ..": lambda: Case(_ingest("..", logs), ("invalid dataset name '..'",), "x"),
        "unicode name": lambda: Case(_ingest("dätä", logs), ("invalid dataset name 'dätä'",), "x"),
        "200-character name": lambda: Case(_ingest("n" * 200, logs), ("invalid dataset name",), "x"),
        "name with a trailing newline": lambda: Case(_ingest("new\n", logs), ("invalid dataset name 'new\\n'",), "new"),
        "NAME@0": lambda: Case(["info", "ds@0"], ("invalid version in 'ds@0'",)),
        "NAME@-1": lambda: Case(["info", "ds@-1"], ("invalid version in 'ds@-1'",)),
        "NAME@999": lambda: Case(["info", "ds@999"], ("ds has no version 999",)),
        "NAME@arabic-indic 1": lambda: Case(["info", "ds@١"], ("invalid version in 'ds@١'",)),
        "NAME@superscript 2": lambda: Case(["validate", "ds@²"], ("invalid version in 'ds@²'",)),
        # npz logs
        "object array": lambda: Case(_ingest("new", _npz(tmp, "obj.npz", observation=np.array(
            [[1]] * 5, dtype=object))), ("obj.npz", "episode 0", "field 'observation'", "object arrays"), "new"),
        "episode of 0 steps": lambda: Case(_ingest("new", _npz(tmp, "empty.npz", length=0)),
                                           ("empty.npz", "episode 0", "no steps"), "new"),
        "is_terminal before the last step": lambda: Case(_ingest("new", str(Path(_npz(
            tmp, "z_early_end.npz", is_terminal=np.array([0, 0, 1, 0, 0], bool))).parent), *ONE_WORKER),
            ("z_early_end.npz", "episode 0", "step 2", "field 'is_terminal'"), "new"),
        "observation/a beside observation/a/b": lambda: Case(_ingest("new", _npz(
            tmp, "ab.npz", observation=None, **{"observation/a": np.zeros((5, 2), np.float32),
                                                "observation/a/b": np.zeros((5, 2), np.float32)})),
            ("ab.npz", "field 'observation/a'", "both"), "new"),
        "zero-size observation (T, 0)": lambda: Case(_ingest("new", _npz(
            tmp, "zero.npz", observation=np.zeros((5, 0), np.float32))), ("zero.npz", "field 'observation'", "zero-size"),
            "new"),
        "zero-size step metadata (T, 2, 0)": lambda: Case(_ingest("new", _npz(
            tmp, "pad.npz", **{"metadata/pad": np.zeros((5, 2, 0), np.float32)})), ("pad.npz", "field 'pad'", "zero-size"),
            "new"),
        "schema change on append: observation shape": lambda: Case(_ingest("ds", _npz(
            tmp, "wide.npz", observation=np.zeros((5, 5), np.float32))),
            ("cannot append to ds", "field 'steps/observation'", "float32[5]", "float32[4]")),
        "schema change on append: action dtype": lambda: Case(_ingest("ds", _npz(
            tmp, "float_action.npz", action=np.zeros(5, np.float32))),
            ("cannot append to ds", "field 'steps/action'", "float32", "int64")),
        # RLDS sources
        "RLDS shard cut mid-record": lambda: shard_cut(lambda p: p.stat().st_size // 2, "truncated record"),
        "RLDS shard cut at a record boundary": lambda: shard_cut(
            lambda p: _records(p)[2], "truncated shard: holds 3 episodes, but its TFDS metadata lists"),
        "RLDS shard missing its last 10 bytes": lambda: shard_cut(lambda p: p.stat().st_size - 10, "truncated record"),
        # the store itself
        "corrupted latest manifest: info": lambda: (_flip_byte(versions / "2.json", 0),
                                                    Case(["info", "ds"], (str(versions / "2.json"), "damaged")))[1],
        "corrupted latest manifest: validate": lambda: (_flip_byte(versions / "2.json", 0),
                                                        Case(["validate", "ds"], (str(versions / "2.json"),)))[1],
        "corrupted latest manifest: ingest": lambda: (_flip_byte(versions / "2.json", 0),
                                                      Case(_ingest("ds", logs), (str(versions / "2.json"),)))[1],
        "corrupted old manifest: validate --all": lambda: (_flip_byte(versions / "1.json", 0),
                                                           Case(["validate", "--all", "--quick", "ds"],
                                                                (str(versions / "1.json"),)))[1],
        "deleted version file": lambda: ((versions / "1.json").unlink(),
                                         Case(["info", "ds@1"], ("ds has no version 1",)))[1],
        "deleted segment directory": lambda: (shutil.rmtree(segment_of(1)), Case(
            ["validate", "--quick", "ds"], (str(segment_of(1)), "segment directory is missing")))[1],
        "truncated shard in the store": lambda: (
            os.truncate(next(segment_of(2).glob("*.tfrecord-*")), 100),
            Case(["validate", "--quick", "ds"], (str(next(segment_of(2).glob("*.tfrecord-*"))), "size is 100")))[1],
        # the machine
        "missing input path": lambda: Case(_ingest("new", str(tmp / "nope")), (str(tmp / "nope"), "no such file"), "new"),
        "input directory deleted mid-run": lambda: (shutil.copytree(logs, tmp / "vanishing"), Case(
            _ingest("new", str(tmp / "vanishing"), *ONE_WORKER, "--direct_running_mode=multi_processing"),
            (str(tmp / "vanishing"), "cannot read the input"), "new",
            during=_delete_when_running(store, tmp / "vanishing")))[1],
        "unknown Beam runner": lambda: Case(_ingest("new", logs, "--", "--runner=NoSuchRunner"),
                                            ("cannot start the Beam pipeline", "NoSuchRunner"), "new"),
        "read-only store": lambda: Case(_ingest("new", logs, *ONE_WORKER), (str(store / "new"), "ermission denied"),
                                        "new", child=_no_write_permission(store)),
        "full disk while shards are written": lambda: Case(
            _ingest("new", _npz(tmp, "big.npz", length=60, observation=np.ones((60, 2000), np.float32)), *ONE_WORKER),
            (str(store / "new"), "cannot write into the store"), "new", child=_file_size_limit(200_000)),
        "manifest write refused after the segments moved in": lambda: Case(
            _ingest("ds", str(data / "appendable"), *ONE_WORKER), (str(versions / "3.json"), "ermission denied"),
            child=_no_write_permission(versions)),
    }


CASES = list(_cases(Path("/unused"), Path("/unused")))


def _run(case: Case, store: Path) -> tuple[int, str]:
    argv = ["--store", str(store), *case.argv]
    if case.child is not None:
        process = subprocess.run([*_privileges(), *case.child, RLSTORE, *argv], capture_output=True,
                                 text=True, timeout=180)
        return process.returncode, process.stderr
    thread = threading.Thread(target=case.during) if case.during else None
    if thread:
        thread.start()
    try:
        code = main(argv)
    finally:
        if thread:
            thread.join()
    return code, ""


def _privileges() -> list[str]:
    """As root, file permissions do not bind: run the child without the capabilities that
    override them."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot take write permission away")
    caps = "-dac_override,-dac_read_search,-fowner"
    return [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}"]


def _state(store: Store, name: str) -> tuple:
    """What a failed command must not change: the dataset's versions and segment directories."""
    directory = store.root / name
    segments = sorted(p.name for p in (directory / "segments").iterdir()) if (directory / "segments").is_dir() else []
    versions = sorted(p.name for p in (directory / "versions").iterdir()) if (directory / "versions").is_dir() else []
    return directory.exists(), versions, segments


@pytest.mark.parametrize("kind", CASES)
def test_bad_input(kind, data, tmp_path, capsys):
    shutil.copytree(data / "store", tmp_path / "store")
    case = _cases(tmp_path, data)[kind]()
    store = Store(tmp_path / "store")
    before = _state(store, case.dataset)
    capsys.readouterr()
    try:
        code, child_err = _run(case, tmp_path / "store")
    finally:
        _restore_permissions(tmp_path / "store")
    err = child_err or capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for text in case.expected:
        assert text in lines[0], lines[0]
    assert _state(store, case.dataset) == before, "the dataset changed"
    staging = store.root / case.dataset / "staging"
    assert not staging.exists() or not list(staging.iterdir()), list(staging.iterdir())


def test_a_truncated_rlds_shard_is_counted_under_skip(data, tmp_path, capsys):
    shards = sorted((data / "rlds").glob("*.tfrecord-*"))
    lost = len(_records(shards[1])) - 3
    source, shard = _cut_shard(tmp_path, data, lambda p: _records(p)[2])
    code = main(["--store", str(tmp_path / "store"), "ingest", "--dataset", "new", "--format", "rlds",
                 "--on-error=skip", source, *ONE_WORKER])
    out = capsys.readouterr().out
    assert code == 0
    assert f"published new@1: {20 - lost} episodes" in out and "1 rejected" in out, out
    report = Store(tmp_path / "store").manifest("new").data["report"]
    assert report["rejects"]["count"] == 1 and report["counts"]["rejected_episodes"] == 1


def test_damage_to_one_dataset_does_not_hide_the_others(data, tmp_path, capsys):
    shutil.copytree(data / "store", tmp_path / "store")
    root = tmp_path / "store"
    _flip_byte(root / "ds" / "versions" / "2.json", 0)
    (root / "lost+found").mkdir()
    (root / "d.bak" / "versions").mkdir(parents=True)
    capsys.readouterr()
    assert main(["--store", str(root), "list"]) == 0
    captured = capsys.readouterr()
    assert "other" in captured.out and "ds " not in captured.out
    notes = captured.err.strip().splitlines()
    assert len(notes) == 3 and all(line.startswith("skipped ") for line in notes), notes
    assert any("d.bak: not a dataset" in n for n in notes) and any("lost+found: not a dataset" in n for n in notes)
    assert any(str(root / "ds" / "versions" / "2.json") in n for n in notes)
    assert main(["--store", str(root), "validate", "--quick", "ds@1"]) == 0


def test_gc_removes_orphan_segments_and_nothing_a_version_uses(data, tmp_path, capsys):
    shutil.copytree(data / "store", tmp_path / "store")
    store = Store(tmp_path / "store")
    used = sorted(p.name for p in (store.root / "ds" / "segments").iterdir())
    orphan = store.root / "ds" / "segments" / "20260101T000000-0123456789ab"
    shutil.copytree(store.segment_dirs("ds")[0], orphan)  # what a writer that died after moving it in leaves
    assert main(["--store", str(store.root), "gc"]) == 0
    out = capsys.readouterr().out
    assert f"removed {orphan}" in out
    assert sorted(p.name for p in (store.root / "ds" / "segments").iterdir()) == used
    assert main(["--store", str(store.root), "validate", "--all", "--quick", "ds"]) == 0
