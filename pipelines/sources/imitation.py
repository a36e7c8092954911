"""The imitation library's flat trajectory npz (TrajectoryWithRew, saved by `imitation.data.types.save`).

Keys: `obs` (N_steps + N_episodes rows: each episode carries its final observation), `acts` and
`rews` (N_steps rows), `terminal` (one flag per episode), `indices` (where `acts`/`rews` split
into episodes) and `infos`, an object array of dicts. `infos` would need unpickling, so it is
never read (np.load(..., allow_pickle=False) reads every other key); the lineage lists it as
ignored.

`terminal` follows old gym semantics: it is True whenever the episode ended, time-limit ends
included. The file alone cannot tell the two apart, so the rule is:
- terminal False: the episode was cut (truncated; bootstrap across its end);
- terminal True and `max_episode_steps` given and the episode has exactly that many actions:
  a time-limit cut (truncated), e.g. `max_episode_steps=500` for CartPole-v1;
- terminal True otherwise: a real termination (discount 0), as imitation itself treats it.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from rlstore.pipelines.sources.base import SourceFile, WorkItem, files_in, hash_file
from rlstore.episode import Episode, make_episode
from rlstore.errors import BadInputError, Location

_KEYS = ("obs", "acts", "rews", "terminal", "indices")


class ImitationFormat:
    name = "imitation"

    def __init__(self, max_episode_steps: int | None = None):
        """`max_episode_steps`: the environment's time limit; episodes that reach it are truncated."""
        if max_episode_steps is not None and (not isinstance(max_episode_steps, int) or max_episode_steps < 1):
            raise BadInputError(f"max_episode_steps must be a positive integer, got {max_episode_steps!r}")
        self.max_episode_steps = max_episode_steps

    def detect(self, path: Path) -> bool:
        if path.is_dir():
            first = next(iter(sorted(path.glob("*.npz"))), None)
            return first is not None and _is_imitation(first)
        return path.suffix == ".npz" and _is_imitation(path)

    def work_items(self, paths: Sequence[Path]) -> list[WorkItem]:
        files: list[Path] = []
        for path in paths:
            found = [p for p in files_in(path) if p.suffix == ".npz"] if path.is_dir() else [path]
            if not found:
                raise BadInputError("directory holds no .npz files", Location(file=str(path)))
            for file in found:
                if not _is_imitation(file):
                    raise BadInputError(f"not an imitation trajectory file (expected keys {', '.join(_KEYS)})",
                                        Location(file=str(file)))
            files.extend(found)
        return [{"path": str(p)} for p in dict.fromkeys(files)]

    def read(self, item: WorkItem) -> Iterator[tuple[Location, Episode]]:
        where = Location(file=item["path"])
        arrays = _load(item["path"], where)
        act_ends = _split_points(arrays, where)
        starts = np.concatenate([[0], act_ends[:-1]])
        for index, (start, end) in enumerate(zip(starts, act_ends)):
            episode_where = where.at(episode=index)
            length = int(end - start)
            if self.max_episode_steps is not None and length > self.max_episode_steps:
                raise BadInputError(f"episode has {length} actions, more than max_episode_steps={self.max_episode_steps}",
                                    episode_where.at(field="acts"))
            terminal = bool(arrays["terminal"][index]) and length != self.max_episode_steps
            yield episode_where, _episode(arrays, int(start), int(end), index, terminal)

    def source_files(self, item: WorkItem) -> list[SourceFile]:
        return [hash_file(item["path"])]

    def run_metadata(self, paths: Sequence[Path]) -> dict[str, Any]:
        """Keys of the input that were not ingested (e.g. pickled `infos`), so the lineage says so."""
        ignored = {}
        for item in self.work_items(paths):
            unread = sorted(set(_names(Path(item["path"]))) - set(_KEYS))
            if unread:
                ignored[item["path"]] = unread
        return {"ignored_keys": ignored} if ignored else {}


def _episode(arrays: dict[str, np.ndarray], start: int, end: int, index: int, terminal: bool) -> Episode:
    """Episode `index`: actions [start, end) and, shifted by one final observation per earlier episode, its observations."""
    def with_last_row(values: np.ndarray) -> np.ndarray:
        return np.concatenate([values[start:end], np.zeros_like(values[:1])])

    discount = np.ones(end - start + 1, np.float32)
    if terminal:
        discount[-2] = 0.0
    observation = arrays["obs"][start + index:end + index + 1]
    return make_episode(observation, with_last_row(arrays["acts"]), with_last_row(arrays["rews"]), discount, terminal)


def _names(path: Path) -> list[str]:
    """Array names in an npz, from the zip directory alone (no array is read)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return [name[:-4] for name in archive.namelist() if name.endswith(".npy")]
    except (OSError, zipfile.BadZipFile):
        return []


def _is_imitation(path: Path) -> bool:
    return {"obs", "acts", "indices", "terminal"} <= set(_names(path))


def _load(path: str, where: Location) -> dict[str, np.ndarray]:
    arrays = {}
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as error:  # numpy raises several types for a damaged zip
        raise BadInputError(f"not a readable .npz file ({error})", where) from None
    with archive:
        for key in _KEYS:
            if key not in archive.files:
                hint = " (a Trajectory without rewards is not a TrajectoryWithRew)" if key == "rews" else ""
                raise BadInputError("required array is missing" + hint, where.at(field=key))
            try:
                arrays[key] = archive[key]
            except ValueError as error:
                reason = "object arrays are not allowed (they would need unpickling)" if "pickle" in str(error) else str(error)
                raise BadInputError(reason, where.at(field=key)) from None
    for key in ("obs", "acts", "rews"):
        if arrays[key].dtype.kind not in "biuf" or arrays[key].ndim == 0:
            shape = list(arrays[key].shape)
            raise BadInputError(f"{key} must be a numeric per-step array, got {arrays[key].dtype}{shape}", where.at(field=key))
    return arrays


def _split_points(arrays: dict[str, np.ndarray], where: Location) -> np.ndarray:
    """Exclusive end of each episode in `acts`, after checking the arrays agree with each other."""
    steps, indices, terminal = len(arrays["acts"]), arrays["indices"], arrays["terminal"]
    if indices.ndim != 1 or indices.dtype.kind not in "iu":
        raise BadInputError("indices must be a 1-D integer array", where.at(field="indices"))
    ends = np.concatenate([indices, [steps]]).astype(np.int64)
    if np.any(np.diff(np.concatenate([[0], ends])) < 1):
        raise BadInputError("indices must be increasing and inside acts (every episode needs an action)",
                            where.at(field="indices"))
    if len(arrays["rews"]) != steps:
        raise BadInputError(f"has {len(arrays['rews'])} rows but acts has {steps} (arrays of unequal length)",
                            where.at(field="rews"))
    if len(terminal) != len(ends) or terminal.dtype.kind not in "biu":
        raise BadInputError(f"needs one boolean per episode ({len(ends)}), got {len(terminal)} {terminal.dtype}",
                            where.at(field="terminal"))
    if len(arrays["obs"]) != steps + len(ends):
        raise BadInputError(f"has {len(arrays['obs'])} rows; {steps} steps in {len(ends)} episodes need "
                            f"{steps + len(ends)} (one final observation per episode)", where.at(field="obs"))
    return ends
