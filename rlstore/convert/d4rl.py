"""D4RL's HDF5 layout, the inverse of `rlstore.pipelines.sources.d4rl`.

One flat table of transitions: `observations`, `actions`, `rewards`, `next_observations`,
`terminals` (set on the last transition of an episode that terminated) and `timeouts` (set on
the last transition of every other episode: a time-limit cut, which learners bootstrap across),
step metadata under `infos/*` and episode metadata under `metadata/*`. An RLDS episode of T
steps gives T-1 rows; its last step survives as the last row's next observation.

D4RL has no place for per-episode values (metadata/* is one value for the whole file), for step
fields other than `infos`, or for nested observations and actions (they are written as groups,
which D4RL's own loaders do not read); each is named in a warning.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rlstore.convert.common import ConvertReport, refuse_existing
from rlstore.names import DatasetRef
from rlstore.nest import flatten
from rlstore.numpy import episodes as read_episodes
from rlstore.store import Store

_CORE = ("observation", "action", "reward", "discount", "is_first", "is_last", "is_terminal")


def episode_rows(steps: dict[str, Any]) -> dict[str, np.ndarray]:
    """D4RL's flat rows (keys as HDF5 paths) of one RLDS episode's steps."""
    flat = flatten(steps)
    rows = len(steps["is_last"]) - 1
    table: dict[str, np.ndarray] = {}
    for name, source in (("observations", "observation"), ("actions", "action")):
        for key, value in flatten({name: steps[source]}).items():
            table[key] = value[:rows]
    for key, value in flatten({"next_observations": steps["observation"]}).items():
        table[key] = value[1:]
    table["rewards"] = np.asarray(steps["reward"])[:rows]
    terminal = bool(np.asarray(steps["is_terminal"])[-1])
    table["terminals"] = np.zeros(rows, bool)
    table["timeouts"] = np.zeros(rows, bool)
    if rows:
        table["terminals" if terminal else "timeouts"][-1] = True
    for key, value in flat.items():
        if key.startswith("infos/"):
            table[key] = value[:rows]
    return table


def write_d4rl(store: Store, ref: DatasetRef, out: Path, report: ConvertReport,
               progress: Callable[[int], None]) -> None:
    import h5py

    refuse_existing(out)
    manifest = store.manifest(ref)
    schema = manifest.schema
    for key in schema.steps:
        if key.split("/")[0] not in _CORE and not key.startswith("infos/"):
            report.warn(f"step field '{key}' is dropped: D4RL keeps step metadata only under infos/*")
    for name in ("observation", "action"):
        if any(key.startswith(f"{name}/") for key in schema.steps):
            report.warn(f"{name} is a nested dict: written as HDF5 groups {name}s/..., which D4RL's loaders do not read")
    if any(spec.is_image for spec in schema.steps.values()):
        report.warn("image observations are written as raw uint8 arrays (D4RL has no image encoding)")
    partial = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.partial")
    first_metadata: dict[str, Any] | None = None
    try:
        with h5py.File(partial, "w") as h5:
            for episode in read_episodes(store, ref, shuffle=False):
                steps = episode.pop("steps")
                metadata = flatten(episode)
                if first_metadata is None:
                    first_metadata = metadata
                    for key, value in metadata.items():
                        h5.create_dataset(f"metadata/{key}", data=_hdf5_value(value))
                else:
                    for key, value in metadata.items():
                        if not np.array_equal(value, first_metadata[key]):
                            report.warn(f"episode metadata '{key}' differs between episodes: D4RL's metadata/* "
                                        "holds one value per file, the first episode's is kept")
                for key, value in episode_rows(steps).items():
                    _append(h5, key, value)
                report.episodes += 1
                report.steps += len(steps["is_last"])
                progress(1)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)


def _hdf5_value(value: np.ndarray) -> Any:
    return value.item() if value.dtype == object and value.ndim == 0 else (
        np.asarray(value.tolist(), dtype=object) if value.dtype == object else value)


def _append(h5, key: str, value: np.ndarray) -> None:
    value = np.asarray(value)
    if value.dtype == object:
        value = np.asarray(value.tolist(), dtype=h5py_bytes())
    if key not in h5:
        h5.create_dataset(key, data=value, maxshape=(None, *value.shape[1:]), chunks=True)
        return
    dataset = h5[key]
    start = dataset.shape[0]
    dataset.resize(start + len(value), axis=0)
    dataset[start:] = value


def h5py_bytes():
    import h5py

    return h5py.string_dtype(encoding="ascii")
