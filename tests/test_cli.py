"""The command sequence from the README, through the real CLI."""
import json
import re
import os
import subprocess
import sys
from pathlib import Path

from rlstore.cli import main
from rlstore.store import Store
from tests.helpers import publish_episodes, vector_episode


def _published(out: str) -> tuple:
    """(dataset, version, episodes, steps, segments) from `ingest`'s first line."""
    found = re.match(r"published (\w+)@(\d+): (\d+) episodes, (\d+) steps in (\d+) segment\(s\)\n", out)
    assert found, out
    name, *numbers = found.groups()
    return (name, *map(int, numbers))


def _table(out: str) -> list[dict]:
    """The rows of a `list` table as dicts keyed by its header (columns are two or more spaces apart)."""
    header, rule, *rows = out.rstrip("\n").split("\n")
    assert set(rule) <= {"-", " "}, out
    names = header.split()
    return [dict(zip(names, re.split(r"\s{2,}", row.strip()))) for row in rows]


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_ingest_list_info_validate(capsys, tmp_path, vector_logs):
    logs, _, originals = vector_logs
    other = Store(tmp_path / "other")
    publish_episodes(other, "elsewhere", [vector_episode(7, 100 + i) for i in range(3)])
    rlds_dir = other.segment_dirs("elsewhere")[0]
    store = str(tmp_path / "store")

    originals_steps = sum(len(episode["steps"]["reward"]) for episode in originals)
    code, out, _ = _run(capsys, "--store", store, "ingest", "--dataset", "catch_logs", "--format", "rlds", str(rlds_dir))
    assert code == 0 and _published(out) == ("catch_logs", 1, 3, 21, 1)
    code, out, _ = _run(capsys, "--store", store, "ingest", "--dataset", "catch_logs", "--format", "npz", f"{logs}/*.npz")
    assert code == 0 and _published(out) == ("catch_logs", 2, 3 + len(originals), 21 + originals_steps, 2)

    code, out, _ = _run(capsys, "--store", store, "list")
    (row,) = _table(out)
    assert code == 0 and (row["name"], row["latest"], row["episodes"], row["steps"]) == (
        "catch_logs", "2", str(3 + len(originals)), str(21 + originals_steps))

    code, out, _ = _run(capsys, "--store", store, "info", "catch_logs", "--json")
    info = json.loads(out)
    for key in ("name", "version", "num_episodes", "num_steps", "segments", "sources", "features", "stats"):
        assert key in info
    assert info["version"] == 2 and info["num_episodes"] == 3 + len(originals)
    assert all(Path(s).is_absolute() and Path(s, "dataset_info.json").exists() for s in info["segments"])
    assert set(info["stats"]["episode_return"]) >= {"mean", "min", "max"}
    assert len(info["sources"]) == len(originals)

    code, out, _ = _run(capsys, "--store", store, "info", "catch_logs@1")
    counts = re.search(r"^  episodes  (\d+)    steps (\d+)    segments (\d+)$", out, re.M)
    assert code == 0 and out.startswith("catch_logs@1  (versions: 1, 2)\n") and counts.groups() == ("3", "21", "1")

    code, out, _ = _run(capsys, "--store", store, "validate", "catch_logs")
    assert code == 0 and out == f"catch_logs@2: ok (2 segment(s), {3 + len(originals)} episodes checked)\n"

    shard = next(Path(info["segments"][1]).glob("*.tfrecord-*"))
    shard.write_bytes(shard.read_bytes()[:-3])
    code, _, err = _run(capsys, "--store", store, "validate", "catch_logs")
    assert code == 1 and str(shard) in err
    code, _, _ = _run(capsys, "--store", store, "validate", "catch_logs@1")
    assert code == 0  # version 1 does not contain the damaged segment


def test_store_root_from_environment_and_console_script(tmp_path):
    publish_episodes(Store(tmp_path), "env_ds", [vector_episode(5, 0)])
    rlstore = Path(sys.executable).with_name("rlstore")
    env = {**os.environ, "RLSTORE_ROOT": str(tmp_path)}
    listing = subprocess.run([str(rlstore), "list"], env=env, capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0 and [row["name"] for row in _table(listing.stdout)] == ["env_ds"]
    assert listing.stderr == ""
    helped = subprocess.run([sys.executable, "-m", "rlstore", "--help"], capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and "RLSTORE_ROOT" in helped.stdout and "examples:" in helped.stdout
    missing = subprocess.run([str(rlstore), "info", "nothing"], env=env, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and missing.stderr.startswith("error: no dataset named 'nothing'")
