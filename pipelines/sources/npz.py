"""rlstore's plain episode format: one `.npz` per episode, writable with numpy alone.

Keys (every per-step array has T rows, following RLDS's SAR alignment):
    observation            or observation/<key>[/<key>...] for dict observations
    action                 or action/<key>...
    reward, discount       r_t and d_t follow a_t; the last row's values are ignored (stored as 0)
    is_terminal            optional: a bool scalar, or T bools of which only the last may be True;
                           if absent, the episode is terminal when the final transition's discount is 0
    metadata/<name>        optional per-step metadata (T rows)
    episode/<name>         optional episode metadata (any shape)
Files are opened with allow_pickle=False: object arrays are refused, never unpickled.
"""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from rlstore.pipelines.sources.base import SourceFile, WorkItem, files_in, hash_file
from rlstore.episode import Episode, make_episode
from rlstore.errors import BadInputError, Location
from rlstore.nest import flatten, unflatten

_NESTED = ("observation", "action")
_EPISODE_PREFIX = "episode/"
_SINGLE = ("reward", "discount", "is_terminal")


class NpzFormat:
    name = "npz"

    def detect(self, path: Path) -> bool:
        return path.suffix == ".npz" or (path.is_dir() and any(path.glob("*.npz")))

    def work_items(self, paths: Sequence[Path]) -> list[WorkItem]:
        files: list[Path] = []
        for path in paths:
            if path.is_dir():
                found = [p for p in files_in(path) if p.suffix == ".npz"]
                if not found:
                    raise BadInputError("directory holds no .npz files", Location(file=str(path)))
                files.extend(found)
            else:
                files.append(path)
        return [{"path": str(p)} for p in dict.fromkeys(files)]

    def read(self, item: WorkItem) -> Iterator[tuple[Location, Episode]]:
        path = item["path"]
        where = Location(file=path, episode=0)
        yield where, episode_from_arrays(_load(Path(path).read_bytes(), where), where)

    def source_files(self, item: WorkItem) -> list[SourceFile]:
        return [hash_file(item["path"])]

    def run_metadata(self, paths: Sequence[Path]) -> dict[str, Any]:
        return {}


def _load(data: bytes, where: Location) -> dict[str, np.ndarray]:
    try:
        archive = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as error:  # numpy raises several types for a damaged zip
        raise BadInputError(f"not a readable .npz file ({error})", where) from None
    arrays = {}
    with archive:
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except ValueError as error:
                reason = "object arrays are not allowed (they would need unpickling)" if "pickle" in str(error) else str(error)
                raise BadInputError(reason, where.at(field=key)) from None
            except Exception as error:
                raise BadInputError(f"unreadable array ({error})", where.at(field=key)) from None
    return arrays


def episode_from_arrays(arrays: Mapping[str, np.ndarray], where: Location = Location()) -> Episode:
    """Builds an RLDS episode from the npz key layout documented above."""
    groups: dict[str, dict[str, np.ndarray]] = {"observation": {}, "action": {}, "metadata": {}, "episode": {}}
    singles: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        head = key.split("/", 1)[0]
        if key in _NESTED:
            groups[key][""] = value
        elif head in groups and "/" in key:
            groups[head][key.split("/", 1)[1]] = value
        elif key in _SINGLE:
            singles[key] = value
        else:
            raise BadInputError("unknown key (expected observation, action, reward, discount, is_terminal, "
                                "metadata/<name> or episode/<name>)", where.at(field=key))
    for name in ("observation", "action", "reward", "discount"):
        if name not in singles and not groups.get(name):
            raise BadInputError("required array is missing", where.at(field=name))
    for name in _NESTED:
        _check_leaves(name, groups[name], where)
    _check_lengths(arrays, where)
    observation, action = (groups[n][""] if "" in groups[n] else unflatten(groups[n]) for n in _NESTED)
    reward, discount = singles["reward"], singles["discount"]
    for name, value in (("reward", reward), ("discount", discount)):
        if value.dtype.kind not in "fiu":
            raise BadInputError(f"{name} must be numeric, got {value.dtype}", where.at(field=name))
    for key, value in flatten({"action": action}).items():
        if value.dtype.kind not in "biuf":
            raise BadInputError(f"actions must be numeric, got {value.dtype}", where.at(field=key))
    terminal = _is_terminal(singles.get("is_terminal"), discount, where)
    return make_episode(observation, action, reward, discount, terminal,
                        {k: v for k, v in groups["metadata"].items()}, unflatten(groups["episode"]))


def _check_leaves(name: str, group: Mapping[str, np.ndarray], where: Location) -> None:
    """No key of a nested field may be both an array and a dict: `observation/a` beside
    `observation/a/b` (or `observation` beside `observation/x`) has no tree."""
    for key in sorted(group):
        inner = f"{key}/" if key else ""
        if any(other != key and other.startswith(inner) for other in group):
            full = f"{name}/{key}" if key else name
            raise BadInputError(f"both '{full}' and '{full}/<key>' arrays are present", where.at(field=full))


def _check_lengths(arrays: Mapping[str, np.ndarray], where: Location) -> None:
    """Every per-step array has one row per step; names the odd one out by its npz key."""
    per_step = {k: v for k, v in arrays.items() if not k.startswith(_EPISODE_PREFIX) and not (k == "is_terminal" and v.ndim == 0)}
    for key, value in per_step.items():
        if value.ndim == 0:
            raise BadInputError("a per-step array must have one row per step, got a scalar", where.at(field=key))
    lengths = {key: len(value) for key, value in per_step.items()}
    expected = len(arrays["observation"]) if "observation" in arrays else max(lengths.values(), key=list(lengths.values()).count)
    for key, length in sorted(lengths.items()):
        if length != expected:
            raise BadInputError(f"has {length} rows but the episode has {expected} steps (arrays of unequal length)",
                                where.at(field=key))
    if expected == 0:
        raise BadInputError("episode has no steps", where)


def _is_terminal(value: np.ndarray | None, discount: np.ndarray, where: Location) -> bool:
    if value is None:
        return discount.ndim == 1 and len(discount) >= 2 and discount[-2] == 0
    value = np.asarray(value)
    if value.dtype.kind not in "biu":
        raise BadInputError(f"is_terminal must be boolean, got {value.dtype}", where.at(field="is_terminal"))
    if value.ndim == 0:
        return bool(value)
    if value[:-1].any():
        raise BadInputError("is_terminal may only be True on the last step",
                            where.at(step=int(np.flatnonzero(value[:-1])[0]), field="is_terminal"))
    return bool(value[-1])


def write_episode(path: str | os.PathLike, episode: Episode) -> None:
    """Saves an RLDS episode in this format, atomically (write to a temp file, then rename)."""
    steps = dict(episode["steps"])
    arrays: dict[str, Any] = {}
    for name in _NESTED:
        value = steps.pop(name)
        arrays.update({f"{name}/{k}": v for k, v in flatten(value).items()} if isinstance(value, Mapping) else {name: value})
    arrays["reward"], arrays["discount"] = steps.pop("reward"), steps.pop("discount")
    arrays["is_terminal"] = np.asarray(steps.pop("is_terminal"))[-1]
    steps.pop("is_first"), steps.pop("is_last")
    arrays.update({f"metadata/{k}": v for k, v in flatten(steps).items()})
    arrays.update({f"episode/{k}": v for k, v in flatten({k: v for k, v in episode.items() if k != "steps"}).items()})
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(handle, "wb") as stream:
        np.savez(stream, **arrays)
    os.replace(temporary, path)
