"""The run manifest: lineage from data to model.

Every run directory holds `run.json`, naming the agent, the exact dataset version it trained on
(with that version's manifest hash, so a rewritten store would be noticed), the config, the
seed, the specs the networks were built from, and one entry per session (a first run and each
resume) with the code version that ran it: the rlstore version and, when the code sits in a git
checkout, its commit, read from `.git` without running git.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import rlstore
from rlstore.manifest import utc_now, writer_identity
from rlstore.store import Store

FORMAT = "rlstore.run/1"


def code_version() -> dict[str, Any]:
    """The rlstore version and the git commit of the checkout it runs from (None outside one)."""
    return {"rlstore": rlstore.__version__, "git_commit": git_commit(Path(rlstore.__file__).resolve().parent)}


def git_commit(start: Path) -> str | None:
    """The commit HEAD points to in the first git checkout at or above `start`."""
    for directory in (start, *start.parents):
        git = directory / ".git"
        if git.is_file():  # a worktree: "gitdir: <path>"
            git = (directory / git.read_text().split(":", 1)[1].strip()).resolve()
        if git.is_dir():
            return _resolve_head(git)
    return None


def _resolve_head(git: Path) -> str | None:
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head or None
        ref = head.split(":", 1)[1].strip()
        common = git / "commondir"
        roots = [git] + ([(git / common.read_text().strip()).resolve()] if common.is_file() else [])
        for root in roots:
            if (root / ref).is_file():
                return (root / ref).read_text().strip()
            packed = root / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split(" ", 1)[0]
    except OSError:
        return None
    return None


def dataset_entry(store: Store, ref: str) -> dict[str, Any]:
    """Names one dataset version exactly: name, version, counts and the sha256 of its manifest."""
    manifest = store.manifest(ref)
    raw = store.read_file(store.version_path(manifest.name, manifest.version))
    return {"ref": f"{manifest.name}@{manifest.version}", "name": manifest.name, "version": manifest.version,
            "store": store.location, "manifest_sha256": hashlib.sha256(raw).hexdigest(),
            "num_episodes": manifest.num_episodes, "num_steps": manifest.num_steps}


def new_manifest(agent: str, dataset: Mapping[str, Any], config: Mapping[str, Any], seed: int,
                 specs: Mapping[str, Any]) -> dict[str, Any]:
    return {"format": FORMAT, "agent": agent, "dataset": dict(dataset), "config": dict(config), "seed": seed,
            "specs": dict(specs), "created": utc_now(), "writer": writer_identity(), "sessions": []}


def start_session(manifest: dict[str, Any], start_step: int, target_steps: int) -> dict[str, Any]:
    """Appends a session entry (this invocation) and returns it, to be completed by `end_session`."""
    session = {"started": utc_now(), "code": code_version(), "start_step": start_step,
               "target_steps": target_steps, "end_step": None, "finished": None}
    manifest["sessions"].append(session)
    return session


def end_session(session: dict[str, Any], end_step: int) -> None:
    session.update(end_step=end_step, finished=utc_now())


def write(path: str | Path, manifest: Mapping[str, Any]) -> None:
    """Writes atomically (temp file + rename): a crash never leaves a half-written manifest."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".run-", suffix=".json")
    with os.fdopen(handle, "w") as stream:
        json.dump(manifest, stream, indent=1)
    os.replace(temp, path)


def read(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
