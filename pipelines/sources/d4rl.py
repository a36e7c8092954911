"""D4RL HDF5 files: one flat table of transitions per file, cut into episodes by terminals and timeouts.

The episodes are the ones TFDS's own D4RL builders make (`tensorflow_datasets/d4rl/dataset_utils.py`):
- an episode ends at a step whose `terminals` or `timeouts` is set; steps after the last end are
  kept as a final, truncated episode;
- its final observation is `next_observations` at its last step, added as an extra last step
  with zero action, reward and discount. Without `next_observations`, a terminal episode gets an
  all-zero final observation and any other episode ends on its last recorded observation (its
  last action and reward are then dropped), as in TFDS;
- discount is 0 only on the last real step of an episode that ended on a terminal (a terminal
  wins over a timeout at the same step);
- `infos/*` become step metadata under `infos` (zero on the extra step), `metadata/*` episode
  metadata, the same for every episode of a file.
One deliberate difference: TFDS gives every episode the file's very last next_observation
(`steps['next_observation'][-1]`); here each episode gets its own.

Files without `timeouts` (early D4RL versions) are refused unless `max_episode_steps` is given;
then an episode is also cut after that many steps, as D4RL's own `sequence_dataset` does.

A file is never loaded whole: the driver scans terminals/timeouts in slices to cut it into work
items of whole episodes (about `steps_per_item` steps each), and a worker reads only its slice.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from rlstore.pipelines.notes import OBSERVATION_JUMP, TRUNCATED, add_note, observation_jumps
from rlstore.pipelines.sources.base import SourceFile, WorkItem, files_in, hash_file
from rlstore.episode import Episode, make_episode
from rlstore.errors import BadInputError, Location
from rlstore.nest import unflatten

SUFFIXES = (".hdf5", ".h5")
_REQUIRED = ("observations", "actions", "rewards", "terminals")
_FLAGS = ("terminals", "timeouts")
_SCAN_SLICE = 1 << 20


class D4rlFormat:
    name = "d4rl"

    def __init__(self, max_episode_steps: int | None = None, steps_per_item: int = 100_000):
        """`max_episode_steps` cuts episodes in files without `timeouts`; `steps_per_item` sizes a
        work item (memory per worker vs. parallelism)."""
        for option, value in (("max_episode_steps", max_episode_steps), ("steps_per_item", steps_per_item)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise BadInputError(f"{option} must be a positive integer, got {value!r}")
        self.max_episode_steps = max_episode_steps
        self.steps_per_item = steps_per_item

    def detect(self, path: Path) -> bool:
        if path.is_dir():
            return any(p.suffix in SUFFIXES for p in path.iterdir() if p.is_file())
        return path.suffix in SUFFIXES

    def work_items(self, paths: Sequence[Path]) -> list[WorkItem]:
        files: list[Path] = []
        for path in paths:
            if path.is_dir():
                found = [p for p in files_in(path) if p.suffix in SUFFIXES]
                if not found:
                    raise BadInputError("directory holds no .hdf5 files", Location(file=str(path)))
                files.extend(found)
            else:
                files.append(path)
        return [item for path in dict.fromkeys(files) for item in self._plan(path)]

    def _plan(self, path: Path) -> list[WorkItem]:
        """Work items of whole episodes, found by scanning the done flags slice by slice."""
        where = Location(file=str(path))
        with open_hdf5(path, where) as h5:
            length = _check_layout(h5, where)
            max_steps = self._max_steps(h5, where)
            ends = episode_ends(h5, 0, length, max_steps, where)
        items, start, first_episode = [], 0, 0
        for index, end in enumerate(ends):
            if end - start >= self.steps_per_item or index == len(ends) - 1:
                items.append({"path": str(path), "start": start, "stop": int(end), "episode": first_episode})
                start, first_episode = int(end), index + 1
        return items

    def _max_steps(self, h5, where: Location) -> int | None:
        if "timeouts" in h5:
            return None
        if self.max_episode_steps is None:
            raise BadInputError("the file has no 'timeouts', so time-limit ends cannot be told from the data; "
                                "pass --max-episode-steps N (the environment's time limit)", where.at(field="timeouts"))
        return self.max_episode_steps

    def read(self, item: WorkItem) -> Iterator[tuple[Location, Episode]]:
        path, start, stop = item["path"], item["start"], item["stop"]
        where = Location(file=path)
        with open_hdf5(Path(path), where) as h5:
            ends = episode_ends(h5, start, stop, self._max_steps(h5, where), where)
            arrays = {key: read_slice(h5, key, start, stop, where) for key in _per_step_keys(h5) if key != "timeouts"}
            if arrays["rewards"].ndim == 2 and arrays["rewards"].shape[1] == 1:  # TFDS squeezes (N, 1) rewards
                arrays["rewards"] = arrays["rewards"][:, 0]
            episode_metadata = _episode_metadata(h5, where)
            unfinished_tail = stop == len(h5["rewards"]) and not any(
                read_slice(h5, key, stop - 1, stop, where).any() for key in _FLAGS if key in h5)
        begin = 0
        for offset, end in enumerate(ends - start):
            rows = {k: v[begin:end] for k, v in arrays.items()}
            episode = _episode(rows, episode_metadata)
            if "next_observations" in rows:
                for t in observation_jumps(rows["observations"], rows["next_observations"]):
                    add_note(episode, OBSERVATION_JUMP, f"next_observations[{t}] differs from observations[{t + 1}]", step=t)
            is_last = offset == len(ends) - 1
            if is_last and unfinished_tail and (self.max_episode_steps is None or end - begin != self.max_episode_steps):
                add_note(episode, TRUNCATED, "the file ends inside this episode (no terminal or timeout); kept as truncated")
            yield where.at(episode=item["episode"] + offset), episode
            begin = end

    def source_files(self, item: WorkItem) -> list[SourceFile]:
        # A file is split into several items; the first one answers for it, so it is hashed once.
        return [hash_file(item["path"])] if item["start"] == 0 else []

    def run_metadata(self, paths: Sequence[Path]) -> dict[str, Any]:
        return {}


@contextmanager
def open_hdf5(path: Path, where: Location) -> Iterator[Any]:
    """An open h5py.File; a truncated or damaged file is bad input naming it."""
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise BadInputError(f"not a readable HDF5 file ({str(error).splitlines()[0]})", where) from None
    with handle:
        yield handle


def read_slice(h5, key: str, start: int, stop: int, where: Location) -> np.ndarray:
    try:
        return h5[key][start:stop]
    except OSError as error:
        raise BadInputError(f"unreadable data ({str(error).splitlines()[0]})", where.at(field=key)) from None


def _per_step_keys(h5) -> list[str]:
    keys = [k for k in (*_REQUIRED, "timeouts", "next_observations") if k in h5]
    return keys + _datasets_under(h5, "infos")


def _datasets_under(h5, group: str) -> list[str]:
    import h5py

    if group not in h5 or not isinstance(h5[group], h5py.Group):
        return []
    found: list[str] = []
    h5[group].visititems(lambda name, node: found.append(f"{group}/{name}") if isinstance(node, h5py.Dataset) else None)
    return sorted(found)


def _check_layout(h5, where: Location) -> int:
    """The number of steps; every per-step array must be numeric and have exactly that many rows."""
    import h5py

    for key in _REQUIRED:
        if key not in h5 or not isinstance(h5[key], h5py.Dataset):
            raise BadInputError("required array is missing (not a D4RL file?)", where.at(field=key))
    length = h5["observations"].shape[0] if h5["observations"].shape else 0
    for key in _per_step_keys(h5):
        dataset = h5[key]
        if dataset.dtype.kind not in "biuf":
            raise BadInputError(f"{key} must be numeric, got {dataset.dtype}", where.at(field=key))
        rows = dataset.shape[0] if dataset.shape else None
        if rows != length:
            raise BadInputError(f"has {rows} rows but 'observations' has {length} (arrays of unequal length)",
                                where.at(field=key))
    if length == 0:
        raise BadInputError("the file holds no steps", where)
    return length


def episode_ends(h5, start: int, stop: int, max_steps: int | None, where: Location) -> np.ndarray:
    """Exclusive end positions of the episodes in [start, stop), which begins an episode.

    An episode ends after a terminal or timeout, or after max_steps steps (files without
    timeouts); whatever follows the last end is a final, unfinished episode.
    """
    ends: list[int] = []
    episode_start = start
    for low in range(start, stop, _SCAN_SLICE):
        high = min(low + _SCAN_SLICE, stop)
        done = np.zeros(high - low, bool)
        for key in _FLAGS:
            if key in h5:
                done |= read_slice(h5, key, low, high, where).reshape(high - low, -1).any(axis=1)
        for position in np.flatnonzero(done) + low:
            if max_steps:
                ends.extend(range(episode_start + max_steps, position + 1, max_steps))
            ends.append(int(position) + 1)
            episode_start = int(position) + 1
    if max_steps:
        ends.extend(range(episode_start + max_steps, stop + 1, max_steps))
    if not ends or ends[-1] < stop:
        ends.append(stop)
    return np.asarray(ends, dtype=np.int64)


def _episode(arrays: dict[str, np.ndarray], episode_metadata: dict[str, Any]) -> Episode:
    """One RLDS episode from its rows of the file, following TFDS's `_get_episode`."""
    observation, action, reward = arrays["observations"], arrays["actions"], arrays["rewards"]
    infos = {key.split("/", 1)[1]: value for key, value in arrays.items() if key.startswith("infos/")}
    terminal = bool(np.any(arrays["terminals"][-1]))
    discount = np.ones(len(reward), np.float32)
    if terminal or "next_observations" in arrays:
        final = arrays["next_observations"][-1:] if "next_observations" in arrays else np.zeros_like(observation[:1])
        observation = np.concatenate([observation, final])
        action, reward, discount = (np.concatenate([a, np.zeros_like(a[:1])]) for a in (action, reward, discount))
        infos = {key: np.concatenate([value, np.zeros_like(value[:1])]) for key, value in infos.items()}
        if terminal:
            discount[-2] = 0.0
    step_metadata = {"infos": unflatten(infos)} if infos else None
    return make_episode(observation, action, reward, discount, terminal, step_metadata, episode_metadata)


def _episode_metadata(h5, where: Location) -> dict[str, Any]:
    """`metadata/*` as nested episode metadata; text becomes bytes."""
    values = {}
    for key in _datasets_under(h5, "metadata"):
        try:
            value = h5[key][()]
        except OSError as error:
            raise BadInputError(f"unreadable data ({str(error).splitlines()[0]})", where.at(field=key)) from None
        if isinstance(value, np.ndarray) and value.dtype.kind == "O":
            value = np.asarray([v if isinstance(v, bytes) else str(v).encode() for v in value.reshape(-1)],
                               dtype=np.bytes_).reshape(value.shape)
        elif isinstance(value, (bytes, str)):
            value = np.bytes_(value if isinstance(value, bytes) else value.encode())
        values[key.split("/", 1)[1]] = value
    tree = unflatten(values)
    if "steps" in tree:
        raise BadInputError("'metadata/steps' would replace the episode's steps", where.at(field="metadata/steps"))
    return tree
