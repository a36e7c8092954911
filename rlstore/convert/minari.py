"""Minari datasets, the inverse of `rlstore.pipelines.sources.minari`, written by minari itself.

`minari.load_dataset(dataset_id)` reads the result with `MINARI_DATASETS_PATH=out`. An RLDS
episode of T steps is a Minari episode of T observations and T-1 actions, rewards,
terminations and truncations; the episode ends in a termination when its last step is terminal
and in a truncation otherwise. Step metadata `infos/*` becomes Minari's infos (T rows, as Minari
keeps them); other step fields join the infos under their own names; the episode metadata
`seed` is the episode's seed (-1: none).

Spaces: a version ingested from one Minari dataset keeps that dataset's observation and action
spaces (Tuple spaces, which rlstore stores as dicts keyed '0', '1', ..., become tuples again)
and its descriptive metadata (algorithm, author, description, ...). Any other version gets
spaces made from its schema: Box for numbers (unbounded for floats, the dtype's range for
integers), Text for text, Dict for nested dicts.

Minari cannot hold other episode metadata (its episode ids are positions 0..N-1), and stores
image Boxes as JPEG (lossy); both are named in warnings. rlstore keeps only whether an episode
terminated, so a Minari episode that ended with neither flag comes back truncated.
"""
from __future__ import annotations

import os
import re
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from rlstore.errors import StoreError
from rlstore.convert.common import ConvertReport, refuse_existing
from rlstore.names import DatasetRef
from rlstore.nest import flatten, unflatten
from rlstore.numpy import episodes as read_episodes
from rlstore.schema import FieldSpec
from rlstore.store import Store

_CORE = ("observation", "action", "reward", "discount", "is_first", "is_last", "is_terminal")
_KEPT_METADATA = ("algorithm_name", "author", "author_email", "code_permalink", "description", "requirements",
                  "ref_min_score", "ref_max_score", "num_episodes_average_score")
_EPISODES_PER_WRITE = 64


def write_minari(store: Store, ref: DatasetRef, out: Path, report: ConvertReport, progress: Callable[[int], None],
                 dataset_id: str | None = None, data_format: str = "hdf5") -> None:
    try:
        import minari
        from minari.dataset.minari_storage import MinariStorage
        from minari.namespace import create_namespace, list_local_namespaces
    except ImportError:
        raise StoreError("converting to Minari needs the minari package: pip install 'rlstore[minari]'") from None
    from minari.data_collector.episode_buffer import EpisodeBuffer
    from minari.dataset.minari_dataset import parse_dataset_id as parse_id

    if not dataset_id:
        raise StoreError("converting to Minari needs --dataset-id NAMESPACE/NAME-vN")
    if not re.search(r"-v\d+$", dataset_id):
        raise StoreError(f"bad Minari dataset id {dataset_id!r}: it needs a version, e.g. {dataset_id}-v0")
    try:
        namespace, name, version = parse_id(dataset_id)
    except ValueError as error:
        raise StoreError(f"bad Minari dataset id {dataset_id!r}: {error}") from None
    target = out.joinpath(*(namespace.split("/") if namespace else []), f"{name}-v{version}")
    refuse_existing(target)
    manifest = store.manifest(ref)
    source = _minari_source(manifest.lineage)
    observation_space, action_space = _spaces(manifest.schema.steps, source, report)
    extra_steps = [k for k in manifest.schema.steps if k.split("/")[0] not in _CORE and not k.startswith("infos/")]
    for key in extra_steps:
        report.warn(f"step field '{key}' goes into Minari's infos as infos/{key}")
    for key in manifest.schema.episode:
        if key != "seed" and (key != "episode_id" or source is None):
            report.warn(f"episode metadata '{key}' is dropped: Minari episodes hold only an id and a seed")
    staging = out / f".rlstore-{uuid.uuid4().hex[:8]}.partial"
    try:
        staging.mkdir(parents=True)
        storage = MinariStorage.new(staging / "data", observation_space=observation_space, action_space=action_space,
                                    data_format=data_format)
        storage.update_metadata({"dataset_id": dataset_id, "minari_version": minari.__version__,
                                 **_descriptive(source, ref)})
        batch = []
        for episode in read_episodes(store, ref, shuffle=False):
            batch.append(EpisodeBuffer(**_buffer(episode, observation_space, action_space, extra_steps)))
            report.episodes += 1
            report.steps += len(episode["steps"]["is_last"])
            if len(batch) == _EPISODES_PER_WRITE:
                storage.update_episodes(batch)
                progress(len(batch))
                batch = []
        if batch:
            storage.update_episodes(batch)
            progress(len(batch))
        with _datasets_path(out):
            if namespace and namespace not in list_local_namespaces():
                create_namespace(namespace)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def _datasets_path(root: Path) -> Iterator[None]:
    """minari finds its datasets through MINARI_DATASETS_PATH; set it only while minari works."""
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if previous is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous


def _minari_source(lineage: dict[str, Any]) -> dict[str, Any] | None:
    """The metadata.json of the one Minari dataset a version was ingested from, if it was."""
    if lineage.get("format") != "minari":
        return None
    sources = list((lineage.get("run_metadata") or {}).values())
    return sources[0] if len(sources) == 1 and isinstance(sources[0], dict) else None


def _descriptive(source: dict[str, Any] | None, ref: DatasetRef) -> dict[str, Any]:
    if source is None:
        return {"description": f"converted by rlstore from {ref}"}
    kept = {key: source[key] for key in _KEPT_METADATA if source.get(key) is not None}
    for key in ("author", "author_email"):
        if key in kept:
            kept[key] = set(kept[key]) if isinstance(kept[key], list) else {kept[key]}
    return kept


def _spaces(steps: dict[str, FieldSpec], source: dict[str, Any] | None, report: ConvertReport):
    from minari.serialization import deserialize_space

    if source is not None:
        return deserialize_space(source["observation_space"]), deserialize_space(source["action_space"])
    spaces = []
    for name in ("observation", "action"):
        leaves = {key[len(name) + 1:]: spec for key, spec in steps.items() if key.startswith(name + "/")}
        spaces.append(_dict_space(unflatten(leaves)) if leaves else _leaf_space(steps[name]))
        if any(spec.is_image for key, spec in steps.items() if key.split("/")[0] == name):
            report.warn(f"image {name}s are stored by Minari as JPEG, which is lossy")
    return tuple(spaces)


def _dict_space(tree: dict[str, Any]):
    import gymnasium as gym

    return gym.spaces.Dict({key: _dict_space(value) if isinstance(value, dict) else _leaf_space(value)
                            for key, value in tree.items()})


def _leaf_space(spec: FieldSpec):
    import gymnasium as gym

    if spec.dtype == "str":
        return gym.spaces.Text(max_length=1 << 16)
    dtype = np.dtype(spec.dtype)
    if spec.is_image:
        return gym.spaces.Box(0, 255, spec.shape, np.uint8)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return gym.spaces.Box(info.min, info.max, spec.shape, dtype)
    if dtype.kind == "b":
        return gym.spaces.MultiBinary(list(spec.shape) or 1)
    return gym.spaces.Box(-np.inf, np.inf, spec.shape, dtype)


def _structured(value: Any, space: Any) -> Any:
    """rlstore's nested dicts in the shape of a Minari space (Tuple members are keyed '0', '1', ...)."""
    import gymnasium as gym

    if isinstance(space, gym.spaces.Dict):
        return {key: _structured(value[key], sub) for key, sub in space.spaces.items()}
    if isinstance(space, gym.spaces.Tuple):
        return tuple(_structured(value[str(i)], sub) for i, sub in enumerate(space.spaces))
    if isinstance(space, gym.spaces.Text):
        return [item.decode() if isinstance(item, bytes) else str(item) for item in np.asarray(value).tolist()]
    return np.asarray(value)


def _buffer(episode: dict[str, Any], observation_space, action_space, extra_steps: list[str]) -> dict[str, Any]:
    steps = episode["steps"]
    rows = len(steps["is_last"]) - 1
    terminal = bool(np.asarray(steps["is_terminal"])[-1])
    flags = np.zeros(rows, bool), np.zeros(rows, bool)
    if rows:
        flags[0 if terminal else 1][-1] = True
    flat = flatten(steps)
    infos = {key[len("infos/"):]: value for key, value in flat.items() if key.startswith("infos/")}
    infos.update({key: flat[key] for key in extra_steps})
    seed = int(episode["seed"]) if "seed" in episode else -1
    return {
        "seed": None if seed < 0 else seed,
        "observations": _structured(steps["observation"], observation_space),
        "actions": _structured(_cut(steps["action"], rows), action_space),
        "rewards": np.asarray(steps["reward"])[:rows],
        "terminations": flags[0],
        "truncations": flags[1],
        "infos": unflatten(infos) if infos else {},
    }


def _cut(tree: Any, rows: int) -> Any:
    return {key: _cut(value, rows) for key, value in tree.items()} if isinstance(tree, dict) else tree[:rows]
