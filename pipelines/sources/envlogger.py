"""envlogger Riegeli logs: `metadata.riegeli` plus one timestamped shard directory per file written.

Read with envlogger 1.2's own reader (the `envlogger` extra). envlogger stores, per step, the
timestep the environment returned and the action that led to it: (o_{t+1}, r_t, d_t, a_t); the
reset step (step 0) holds o_0 alone. RLDS step t pairs o_t with the a_t, r_t, d_t that follow it,
so step t takes its observation from logged step t and its action, reward and discount from
logged step t+1; the last step holds the final observation with zeros, as envlogger's own RLDS
conversion (`envlogger.backends.rlds_utils.to_rlds_step`) does. Likewise `custom_data` (what
`step_fn` returned for the timestep carrying o_t) becomes step metadata of step t: a dict's keys
become step fields, any other value the field `custom_data`. What `episode_fn` returned becomes
episode metadata the same way (`episode_metadata`). An episode is terminal when its last
timestep is LAST with discount 0; one that stops without a LAST timestep (logging stopped
mid-episode) is kept as truncated.

envlogger's reader silently skips a shard whose index files are missing, so every shard's
files are checked on the driver first. The log's metadata (environment specs and the user's
`metadata`) goes into the version's lineage through `run_metadata`.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from rlstore.pipelines.sources.base import SourceFile, WorkItem, hash_file
from rlstore.episode import RLDS_STEP_FIELDS, Episode, make_episode
from rlstore.errors import BadInputError, Location

METADATA_FILE = "metadata.riegeli"
SHARD_FILES = ("steps.riegeli", "step_offsets.riegeli", "episode_index.riegeli", "episode_metadata.riegeli")


class EnvloggerFormat:
    name = "envlogger"

    def __init__(self, episodes_per_item: int = 50):
        """`episodes_per_item` sizes a work item (memory per worker vs. parallelism)."""
        if not isinstance(episodes_per_item, int) or episodes_per_item < 1:
            raise BadInputError(f"episodes_per_item must be a positive integer, got {episodes_per_item!r}")
        self.episodes_per_item = episodes_per_item

    def detect(self, path: Path) -> bool:
        return path.is_dir() and (path / METADATA_FILE).is_file()

    def work_items(self, paths: Sequence[Path]) -> list[WorkItem]:
        items: list[WorkItem] = []
        for path in paths:
            _check_files(path)
            with _open(path) as reader:
                count = len(reader.episodes)
            if count == 0:
                raise BadInputError("the log holds no episodes", Location(file=str(path)))
            items.extend({"path": str(path), "start": start, "stop": min(start + self.episodes_per_item, count)}
                         for start in range(0, count, self.episodes_per_item))
        return items

    def read(self, item: WorkItem) -> Iterator[tuple[Location, Episode]]:
        from google.protobuf.message import DecodeError

        with _open(Path(item["path"])) as reader:
            specs = (reader.action_spec(), reader.reward_spec(), reader.discount_spec())
            for index in range(item["start"], item["stop"]):
                where = Location(file=item["path"], episode=index)
                try:
                    steps = list(reader.episodes[index])
                    metadata = reader.episode_metadata()[index]
                except (RuntimeError, ValueError, TypeError, DecodeError) as error:  # how envlogger meets damaged records
                    raise BadInputError(f"unreadable Riegeli data ({type(error).__name__}: {error})", where) from None
                yield where, episode_from_steps(steps, metadata, specs, where)

    def source_files(self, item: WorkItem) -> list[SourceFile]:
        # A log is split into several items; the first one answers for all of its files.
        if item["start"] != 0:
            return []
        return [hash_file(p) for p in sorted(Path(item["path"]).rglob("*")) if p.is_file()]

    def run_metadata(self, paths: Sequence[Path]) -> dict[str, Any]:
        """Each log's own metadata (environment specs and whatever the user logged), by directory."""
        found = {}
        for path in paths:
            with _open(path) as reader:
                found[str(path)] = _jsonable(reader.metadata())
        return found


def _check_files(path: Path) -> None:
    where = Location(file=str(path))
    if not path.is_dir():
        raise BadInputError("an envlogger log is a directory, got a file", where)
    if not (path / METADATA_FILE).is_file():
        raise BadInputError("not an envlogger Riegeli log: the log's metadata file is missing",
                            where.at(file=str(path / METADATA_FILE)))
    shards = sorted(p for p in path.iterdir() if p.is_dir())
    if not shards:
        raise BadInputError("the log has no shard directories", where)
    for shard in shards:
        for name in SHARD_FILES:
            if not (shard / name).is_file():
                raise BadInputError("shard file is missing (envlogger would skip the shard silently)",
                                    Location(file=str(shard / name)))


@contextmanager
def _open(path: Path) -> Iterator[Any]:
    """envlogger's Riegeli reader over a log directory; failing to open it is bad input."""
    from envlogger import reader

    try:
        opened = reader.Reader(str(path))
    except RuntimeError as error:
        raise BadInputError(f"unreadable envlogger log ({str(error).splitlines()[0]})", Location(file=str(path))) from None
    try:
        yield opened
    finally:
        opened.close()


def episode_from_steps(steps: Sequence[Any], metadata: Any, specs: Sequence[Any], where: Location = Location()) -> Episode:
    """An RLDS episode from envlogger's StepData records of one episode and its episode metadata.

    `specs` are the log's (action, reward, discount) dm_env specs, which give the zeros of an
    episode that holds only its reset (no action was ever taken).
    """
    if not steps:
        raise BadInputError("episode has no steps", where)
    if not steps[0].timestep.first():
        raise BadInputError("episode does not start with a reset (FIRST) step", where.at(step=0, field="step_type"))
    later = steps[1:]
    transition = []
    for name, spec, values in zip(("action", "reward", "discount"), specs,
                                  ([s.action for s in later], [s.timestep.reward for s in later],
                                   [s.timestep.discount for s in later])):
        if later:
            transition.append(_append_zeros(_stack(values, where.at(field=name))))
        elif spec is not None:
            transition.append(_zeros(spec))
        else:
            raise BadInputError(f"the episode holds only its reset and the log has no {name} spec", where.at(field=name))
    observation = _stack([s.timestep.observation for s in steps], where.at(field="observation"))
    last = steps[-1].timestep
    terminal = bool(later and last.last() and np.all(np.asarray(last.discount) == 0))
    return make_episode(observation, *transition, terminal,
                        _step_metadata([s.custom_data for s in steps], where),
                        _as_fields(metadata, "episode_metadata", ("steps",), where))


def _zeros(spec: Any) -> Any:
    """One zero row (leading time axis of 1) for a possibly nested dm_env spec."""
    if isinstance(spec, Mapping):
        return {str(k): _zeros(v) for k, v in spec.items()}
    if isinstance(spec, (tuple, list)):
        return {str(i): _zeros(v) for i, v in enumerate(spec)}
    return np.zeros((1, *spec.shape), spec.dtype)


def _step_metadata(values: list[Any], where: Location) -> dict[str, Any] | None:
    missing = [t for t, value in enumerate(values) if value is None]
    if len(missing) == len(values):
        return None
    if missing:
        raise BadInputError("custom_data is missing on some steps", where.at(step=missing[0], field="custom_data"))
    return _as_fields(_stack(values, where.at(field="custom_data")), "custom_data", RLDS_STEP_FIELDS, where)


def _as_fields(value: Any, name: str, reserved: Sequence[str], where: Location) -> dict[str, Any]:
    """A dict's keys as fields, anything else as one field `name`; None is no fields."""
    if value is None:
        return {}
    fields = dict(value) if isinstance(value, Mapping) else {name: value}
    clash = [key for key in fields if key in reserved]
    if clash:
        raise BadInputError(f"'{clash[0]}' is reserved by RLDS", where.at(field=f"{name}/{clash[0]}"))
    return {key: _arrays(v) for key, v in fields.items()}


def _arrays(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _arrays(v) for k, v in value.items()}
    value = np.asarray(value)
    return value.astype(np.bytes_) if value.dtype.kind == "U" else value


def _stack(values: list[Any], where: Location) -> Any:
    """Per-step values (arrays, or dicts/tuples of them) stacked into arrays with a leading time axis;
    tuples become dicts keyed '0', '1', ..."""
    first = values[0]
    if isinstance(first, (Mapping, tuple)):
        keys = list(first.keys()) if isinstance(first, Mapping) else range(len(first))
        try:
            return {str(k): _stack([v[k] for v in values], where.at(field=f"{where.field}/{k}")) for k in keys}
        except (KeyError, IndexError, TypeError):
            raise BadInputError("the structure changes between steps", where) from None
    try:
        stacked = np.stack([np.asarray(v) for v in values])
    except ValueError as error:
        raise BadInputError(f"shapes change between steps ({error})", where) from None
    return stacked.astype(np.bytes_) if stacked.dtype.kind == "U" else stacked


def _append_zeros(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _append_zeros(v) for k, v in tree.items()}
    return np.concatenate([tree, np.zeros_like(tree[:1])])


def _jsonable(value: Any) -> Any:
    """envlogger metadata (numpy arrays and scalars inside dicts) as plain JSON values."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.ndarray, np.generic)):
        return _jsonable(value.tolist())
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)
