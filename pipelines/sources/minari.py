"""Minari dataset directories, read directly with h5py or pyarrow (no dependency on minari).

A dataset is `<name>/data/` holding `metadata.json` and, by its `data_format`, either
- hdf5: `main_data.hdf5` with one `episode_<i>` group per episode, or
- arrow: one directory `<i>/` per episode with `part-0.arrow` and the episode's `metadata.json`.
An episode of T steps has T+1 observations (the last one is the final observation, which becomes
the last RLDS step) and T actions, rewards, terminations and truncations (Arrow pads those to
T+1 rows; the padding is dropped). Infos have T+1 rows too and become step metadata `infos`.

Spaces are decoded from metadata.json's serialised `observation_space` and `action_space`: Dict
spaces become dicts, Tuple spaces dicts keyed '0', '1', ... (Minari's own Arrow naming), image
Boxes (which Minari stores as JPEG) are decoded to uint8 arrays, Text becomes bytes.

Terminations and truncations stay apart: an episode is terminal (discount 0 on its last
transition) only when its last termination flag is set; a truncated or unfinished episode keeps
its discount so learners bootstrap. Episode metadata: `episode_id` (Minari's id) and `seed` (-1
when the episode was reset without one). Reset options are not kept.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from rlstore.pipelines.sources.base import SourceFile, WorkItem, hash_file
from rlstore.pipelines.sources.d4rl import open_hdf5
from rlstore.episode import Episode, make_episode
from rlstore.errors import BadInputError, Location

METADATA = "metadata.json"
HDF5_FILE = "main_data.hdf5"
ARROW_FILE = "part-0.arrow"
_COLUMNS = ("observations", "actions", "rewards", "terminations", "truncations")
_BACKENDS = ("hdf5", "arrow")


class MinariFormat:
    name = "minari"

    def __init__(self, episodes_per_item: int = 100):
        """`episodes_per_item` sizes a work item (memory per worker vs. parallelism)."""
        if not isinstance(episodes_per_item, int) or episodes_per_item < 1:
            raise BadInputError(f"episodes_per_item must be a positive integer, got {episodes_per_item!r}")
        self.episodes_per_item = episodes_per_item

    def detect(self, path: Path) -> bool:
        return path.is_dir() and bool(_data_dirs(path))

    def work_items(self, paths: Sequence[Path]) -> list[WorkItem]:
        items: list[WorkItem] = []
        for path in paths:
            if not path.is_dir():
                raise BadInputError("a Minari dataset is a directory, got a file", Location(file=str(path)))
            directories = _data_dirs(path)
            if not directories:
                raise BadInputError(f"not a Minari dataset: no data/{METADATA} found", Location(file=str(path)))
            for directory in directories:
                metadata = read_metadata(directory)
                ids = _episode_ids(directory, metadata["data_format"], metadata)
                size = self.episodes_per_item
                items.extend({"path": str(directory), "backend": metadata["data_format"], "chunk": index,
                              "episodes": ids[start:start + size]} for index, start in enumerate(range(0, len(ids), size)))
        return items

    def read(self, item: WorkItem) -> Iterator[tuple[Location, Episode]]:
        directory = Path(item["path"])
        metadata = read_metadata(directory)
        spaces = metadata["observation_space"], metadata["action_space"]
        if item["backend"] == "hdf5":
            yield from _read_hdf5(directory, item["episodes"], spaces)
        else:
            yield from _read_arrow(directory, item["episodes"], spaces)

    def source_files(self, item: WorkItem) -> list[SourceFile]:
        directory = Path(item["path"])
        files = [directory / METADATA] if item["chunk"] == 0 else []
        if item["backend"] == "hdf5":
            files += [directory / HDF5_FILE] if item["chunk"] == 0 else []  # shared by every item: hashed once
        else:
            files += [directory / str(i) / name for i in item["episodes"] for name in (ARROW_FILE, METADATA)
                      if (directory / str(i) / name).is_file()]
        return [hash_file(p) for p in files]

    def run_metadata(self, paths: Sequence[Path]) -> dict[str, Any]:
        """Each dataset's metadata.json (dataset id, algorithm, versions, env spec...), by directory."""
        return {str(d): read_metadata(d)["raw"] for path in paths for d in _data_dirs(path)}


def _data_dirs(path: Path, depth: int = 3) -> list[Path]:
    """Minari `data` directories at or below `path` (a dataset, its data dir, or a namespace)."""
    if (path / "data" / METADATA).is_file():
        return [path / "data"]
    if path.name == "data" and (path / METADATA).is_file():
        return [path]
    if depth == 0:
        return []
    return [d for child in sorted(p for p in path.iterdir() if p.is_dir()) for d in _data_dirs(child, depth - 1)]


def read_metadata(directory: Path) -> dict[str, Any]:
    """metadata.json's data format and decoded spaces (plus the raw JSON, for lineage)."""
    path = directory / METADATA
    where = Location(file=str(path))
    try:
        raw = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadInputError(f"not valid JSON ({error})", where) from None
    if not isinstance(raw, dict):
        raise BadInputError("expected a JSON object", where)
    if raw.get("data_format") not in _BACKENDS:
        raise BadInputError(f"data_format must be one of {', '.join(_BACKENDS)}, got {raw.get('data_format')!r}",
                            where.at(field="data_format"))
    spaces = {}
    for name in ("observation_space", "action_space"):
        if not isinstance(raw.get(name), str):
            raise BadInputError("serialised space is missing (datasets from Minari before 0.4 only name the env)",
                                where.at(field=name))
        try:
            spaces[name] = _check_space(json.loads(raw[name]), where.at(field=name))
        except json.JSONDecodeError as error:
            raise BadInputError(f"serialised space is not valid JSON ({error})", where.at(field=name)) from None
    return {"data_format": raw["data_format"], **spaces, "raw": raw}


def _check_space(space: Any, where: Location) -> dict[str, Any]:
    kind = space.get("type") if isinstance(space, dict) else None
    if kind in ("Dict", "Tuple"):
        subspaces = space.get("subspaces")
        if not isinstance(subspaces, dict if kind == "Dict" else list):
            raise BadInputError(f"a {kind} space without its subspaces", where)
        for sub in subspaces.values() if kind == "Dict" else subspaces:
            _check_space(sub, where)
    elif kind not in ("Box", "Discrete", "MultiDiscrete", "MultiBinary", "Text"):
        raise BadInputError(f"unsupported space type {kind!r}", where)
    return space


def _episode_ids(directory: Path, backend: str, metadata: Mapping[str, Any]) -> list[int]:
    where = Location(file=str(directory / HDF5_FILE if backend == "hdf5" else directory))
    if backend == "hdf5":
        if not (directory / HDF5_FILE).is_file():
            raise BadInputError("the dataset's HDF5 file is missing", where)
        with open_hdf5(directory / HDF5_FILE, where) as h5:
            names = [name for name in h5 if name.startswith("episode_")]
        ids = sorted(int(name[len("episode_"):]) for name in names if name[len("episode_"):].isdigit())
    else:
        ids = sorted(int(p.name) for p in directory.iterdir() if p.is_dir() and p.name.isdigit())
        for i in ids:
            if not (directory / str(i) / ARROW_FILE).is_file():
                raise BadInputError("episode file is missing",
                                    Location(file=str(directory / str(i) / ARROW_FILE), episode=i))
    expected = metadata["raw"].get("total_episodes")
    if expected is not None and expected != len(ids):
        raise BadInputError(f"metadata.json promises {expected} episodes but {len(ids)} were found",
                            Location(file=str(directory / METADATA), field="total_episodes"))
    if not ids:
        raise BadInputError("the dataset holds no episodes", where)
    return ids


# ---- HDF5 backend ---------------------------------------------------------------------------

def _read_hdf5(directory: Path, ids: Sequence[int], spaces: tuple[Any, Any]) -> Iterator[tuple[Location, Episode]]:
    import h5py

    path = directory / HDF5_FILE
    with open_hdf5(path, Location(file=str(path))) as h5:
        for i in ids:
            where = Location(file=str(path), episode=i)
            group = h5[f"episode_{i}"]
            try:
                observations = _hdf5_value(group, "observations", spaces[0], where)
                actions = _hdf5_value(group, "actions", spaces[1], where)
                flags = {key: _hdf5_value(group, key, None, where) for key in _COLUMNS[2:]}
                infos = _hdf5_infos(group["infos"]) if isinstance(group.get("infos"), h5py.Group) else {}
            except OSError as error:
                raise BadInputError(f"unreadable data ({str(error).splitlines()[0]})", where) from None
            seed = group.attrs.get("seed")
            yield where, build_episode(observations, actions, flags, infos, int(group.attrs.get("id", i)),
                                       None if seed is None else int(seed), where)


def _hdf5_value(group, name: str, space: Mapping[str, Any] | None, where: Location) -> Any:
    """The data of `name` in `group`, decoded by its space (None: a plain array)."""
    import h5py

    field = where.at(field=f"{where.field}/{name}" if where.field else name)
    if name not in group:
        raise BadInputError("required data is missing", field)
    node = group[name]
    kind = space["type"] if space is not None else None
    if kind in ("Dict", "Tuple"):
        if not isinstance(node, h5py.Group):
            raise BadInputError(f"a {kind} space is stored as a group", field)
        # Minari's HDF5 names a Tuple's members `_index_<i>`; they become keys '<i>' as in its Arrow files
        members = [(key, key, sub) for key, sub in space["subspaces"].items()] if kind == "Dict" else \
            [(str(i), f"_index_{i}", sub) for i, sub in enumerate(space["subspaces"])]
        return {key: _hdf5_value(node, stored, sub, field) for key, stored, sub in members}
    if not isinstance(node, h5py.Dataset):
        raise BadInputError("expected an array, found a group", field)
    if kind == "Text":
        return np.asarray([v if isinstance(v, bytes) else str(v).encode() for v in node[()]], dtype=np.bytes_)
    if space is not None and _is_image(space):
        return _decode_jpegs([bytes(np.asarray(frame, np.uint8)) for frame in node[()]], field)
    return node[()]


def _hdf5_infos(group) -> dict[str, Any]:
    import h5py

    return {key: _hdf5_infos(node) if isinstance(node, h5py.Group) else node[()] for key, node in group.items()}


# ---- Arrow backend --------------------------------------------------------------------------

def _read_arrow(directory: Path, ids: Sequence[int], spaces: tuple[Any, Any]) -> Iterator[tuple[Location, Episode]]:
    import pyarrow as pa

    for i in ids:
        path = directory / str(i) / ARROW_FILE
        where = Location(file=str(path), episode=i)
        try:
            with pa.ipc.open_file(path) as reader:
                table = reader.read_all()
        except (OSError, pa.ArrowException) as error:
            raise BadInputError(f"not a readable Arrow file ({str(error).splitlines()[0]})", where) from None
        for column in _COLUMNS:
            if column not in table.column_names:
                raise BadInputError("column is missing", where.at(field=column))
        steps = table.num_rows - 1  # actions, rewards and flags are padded to the observations' T+1 rows
        if steps < 0:
            raise BadInputError("episode file holds no rows", where)
        columns = {name: table.column(name).combine_chunks() for name in table.column_names}
        observations = _arrow_value(columns["observations"], spaces[0], where.at(field="observations"))
        actions = _cut(_arrow_value(columns["actions"], spaces[1], where.at(field="actions")), steps)
        flags = {key: columns[key].to_numpy(zero_copy_only=False)[:steps] for key in _COLUMNS[2:]}
        infos = _arrow_infos(columns["infos"]) if "infos" in columns else {}
        episode_meta = _episode_metadata(directory / str(i) / METADATA, i)
        yield where, build_episode(observations, actions, flags, infos, episode_meta.get("id", i),
                                   episode_meta.get("seed"), where)


def _episode_metadata(path: Path, episode: int) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadInputError(f"not valid JSON ({error})", Location(file=str(path), episode=episode)) from None
    return value if isinstance(value, dict) else {}


def _arrow_value(column, space: Mapping[str, Any], where: Location) -> Any:
    import pyarrow as pa

    kind = space["type"]
    try:
        if kind in ("Dict", "Tuple"):
            if not pa.types.is_struct(column.type):
                raise BadInputError(f"a {kind} space is stored as a struct column, got {column.type}", where)
            subspaces = space["subspaces"].items() if kind == "Dict" else \
                ((str(i), sub) for i, sub in enumerate(space["subspaces"]))
            return {key: _arrow_value(column.field(key), sub, where.at(field=f"{where.field}/{key}"))
                    for key, sub in subspaces}
        if kind == "Text":
            return np.asarray([(v or "").encode() for v in column.to_pylist()], dtype=np.bytes_)
        if _is_image(space):
            return _decode_jpegs(column.to_pylist(), where)
        if pa.types.is_fixed_size_list(column.type):
            return column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), *_shape(space))
        return column.to_numpy(zero_copy_only=False)
    except KeyError as error:
        raise BadInputError(f"struct field {error} is missing", where) from None


def _arrow_infos(column) -> dict[str, Any]:
    """Minari's Arrow infos: a struct of scalars and flattened arrays whose shape is field metadata."""
    import pyarrow as pa

    infos = {}
    for index, field in enumerate(column.type):
        child = column.field(index)
        if pa.types.is_struct(field.type):
            infos[field.name] = _arrow_infos(child)
            continue
        shape = (field.metadata or {}).get(b"shape")
        if pa.types.is_fixed_size_list(field.type):
            values = child.flatten().to_numpy(zero_copy_only=False)
            dims = tuple(int(d) for d in shape.split(b",") if d) if shape is not None else (field.type.list_size,)
            infos[field.name] = values.reshape(len(child), *dims)
        else:
            infos[field.name] = child.to_numpy(zero_copy_only=False)
    return infos


def _cut(tree: Any, steps: int) -> Any:
    return {k: _cut(v, steps) for k, v in tree.items()} if isinstance(tree, dict) else tree[:steps]


# ---- both backends --------------------------------------------------------------------------

def _shape(space: Mapping[str, Any]) -> tuple[int, ...]:
    if space["type"] == "MultiDiscrete":
        return np.shape(space["nvec"])
    if space["type"] == "MultiBinary":
        return tuple(np.atleast_1d(space["n"]))
    return tuple(space.get("shape") or ())


def _is_image(space: Mapping[str, Any]) -> bool:
    """Minari's rule (`is_image_space`) for the Boxes it stores as JPEG."""
    shape = space.get("shape") or ()
    return (space["type"] == "Box" and len(shape) in (2, 3) and shape[0] >= 32 and shape[1] >= 32
            and space.get("dtype") == "uint8" and bool(np.all(np.asarray(space["low"]) == 0))
            and bool(np.all(np.asarray(space["high"]) == 255)))


def _decode_jpegs(frames: Sequence[bytes], where: Location) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        return np.stack([np.asarray(Image.open(io.BytesIO(frame)), dtype=np.uint8) for frame in frames])
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise BadInputError(f"undecodable JPEG frame ({error})", where) from None


def _leaves(tree: Any, prefix: str) -> Iterator[tuple[str, np.ndarray]]:
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _leaves(value, f"{prefix}/{key}")
    else:
        yield prefix, np.asarray(tree)


def build_episode(observations: Any, actions: Any, flags: Mapping[str, np.ndarray], infos: Mapping[str, Any],
                  episode_id: int, seed: int | None, where: Location) -> Episode:
    """An RLDS episode from one Minari episode: T+1 observations and infos, T of everything else."""
    steps = len(flags["rewards"])
    for name, tree, rows in (("observations", observations, steps + 1), ("actions", actions, steps),
                             ("terminations", flags["terminations"], steps), ("truncations", flags["truncations"], steps),
                             ("infos", infos, steps + 1)):
        for key, value in _leaves(tree, name):
            if value.ndim == 0 or len(value) != rows:
                raise BadInputError(f"has {len(value) if value.ndim else 0} rows but the episode has {steps} steps "
                                    f"and needs {rows} (arrays of unequal length)", where.at(field=key))
    for key, value in _leaves(actions, "actions"):
        if value.dtype.kind not in "biuf":
            raise BadInputError(f"actions must be numeric, got {value.dtype}", where.at(field=key))
    for name in ("terminations", "truncations"):
        early = np.flatnonzero(np.asarray(flags[name][:-1], dtype=bool))
        if early.size:
            raise BadInputError(f"the episode goes on after a {name[:-1]}", where.at(step=int(early[0]), field=name))
    terminal = bool(steps and flags["terminations"][-1])
    discount = np.ones(steps + 1, np.float32)
    if terminal:
        discount[-2] = 0.0
    action = _with_zero_row(actions)
    reward = _with_zero_row(np.asarray(flags["rewards"]))
    metadata = {"episode_id": np.int64(episode_id), "seed": np.int64(-1 if seed is None else seed)}
    return make_episode(observations, action, reward, discount, terminal, {"infos": infos} if infos else None, metadata)


def _with_zero_row(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _with_zero_row(v) for k, v in tree.items()}
    tree = np.asarray(tree)
    return np.concatenate([tree, np.zeros((1, *tree.shape[1:]), tree.dtype)])
