"""Existing RLDS datasets in TFDS's directory format, from TFDS, envlogger or another rlstore.

The TFDS metadata is the authority on shard names (`filepathTemplate` covers files with or
without the `-of-NNNNN` suffix) and on encodings (PNG images, zlib tensors), so shards are
listed and decoded through TFDS's own feature connectors, and on the shards' file format
(TFRecord or Parquet, the two TFDS reads with tf.data). Every split is read and kept as a
split of the new segment (train stays train, val stays val); each shard file is one work item.
Steps are decoded as whole tensors per episode, not one by one; PNG/JPEG images are not decoded
at all, their bytes are kept (`rlstore.tfds_episodes`).

Real RLDS datasets (Open X-Embodiment style) often hold windows cut from longer episodes with
no step marked `is_last`. By default such an episode is repaired: its last step becomes
`is_last` with `is_terminal=False`, a truncation, and the quality report counts the repairs
(note kind REPAIRED_IS_LAST). `strict=True` (`--strict`) refuses it instead. Nothing else in
the episode changes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from rlstore.pipelines.sources.base import SourceFile, WorkItem, files_in, hash_file
from rlstore.episode import RLDS_STEP_FIELDS, Episode
from rlstore.errors import BadInputError, Location
from rlstore.pipelines.notes import REPAIRED_IS_LAST, add_note
from rlstore.segment import check_split_name
from rlstore.shard_formats import FORMATS
from rlstore.tfds_episodes import episodes_in_shard, tf_error_reason

_INFO = "dataset_info.json"


class RldsFormat:
    name = "rlds"

    def __init__(self, strict: bool = False):
        self.strict = bool(strict)

    def detect(self, path: Path) -> bool:
        return path.is_dir() and bool(_dataset_dirs(path))

    def work_items(self, paths: Sequence[Path]) -> list[WorkItem]:
        items: list[WorkItem] = []
        for path in paths:
            if not path.is_dir():
                raise BadInputError("an RLDS dataset is a directory, got a file", Location(file=str(path)))
            files_in(path)
            directories = _dataset_dirs(path)
            if not directories:
                raise BadInputError("not an RLDS dataset directory: no dataset_info.json found", Location(file=str(path)))
            for directory in directories:
                items.extend(_shards(directory))
        return items

    def read(self, item: WorkItem) -> Iterator[tuple[Location, Episode]]:
        import tensorflow as tf

        shard = item["path"]
        episodes = episodes_in_shard(item["dataset_dir"], shard)
        index = 0
        while True:
            where = Location(file=shard, episode=index)
            try:
                episode = next(episodes)
            except StopIteration:
                _check_count(shard, index, item.get("num_episodes"))
                return
            except (tf.errors.DataLossError, tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
                raise BadInputError(f"corrupt shard: {tf_error_reason(error)}", where) from None
            except (tf.errors.NotFoundError, tf.errors.PermissionDeniedError) as error:
                raise BadInputError(f"cannot read the shard: {tf_error_reason(error)}", where) from None
            yield where, episode if self.strict else repair_is_last(episode)
            index += 1

    def source_files(self, item: WorkItem) -> list[SourceFile]:
        return [hash_file(item["path"])]

    def run_metadata(self, paths: Sequence[Path]) -> dict[str, Any]:
        return {}


def _check_count(shard: str, found: int, expected: int | None) -> None:
    """A shard cut at a record boundary reads as a clean, shorter file; only the count of
    episodes TFDS recorded for it tells that records are missing."""
    if expected is not None and found != expected:
        raise BadInputError(f"truncated shard: holds {found} episodes, but its TFDS metadata lists {expected}",
                            Location(file=shard))


def _dataset_dirs(path: Path, depth: int = 3) -> list[Path]:
    """Directories at or below `path` holding TFDS metadata (e.g. `name/1.0.0/`)."""
    if (path / _INFO).is_file():
        return [path]
    if depth == 0:
        return []
    found: list[Path] = []
    for child in sorted(p for p in path.iterdir() if p.is_dir()):
        found.extend(_dataset_dirs(child, depth - 1))
    return found


def _shards(directory: Path) -> list[WorkItem]:
    import tensorflow_datasets as tfds

    where = Location(file=str(directory))
    try:
        builder = tfds.builder_from_directory(str(directory))
    except Exception as error:
        raise BadInputError(f"unreadable TFDS metadata ({type(error).__name__}: {error})", where) from None
    features = builder.info.features
    steps = features["steps"] if "steps" in features else None
    if not isinstance(steps, tfds.features.Dataset):
        raise BadInputError("not an RLDS dataset: features have no 'steps' Dataset", where.at(field="steps"))
    missing = [name for name in RLDS_STEP_FIELDS if name not in steps.feature]
    if missing:
        raise BadInputError("not an RLDS dataset: step field is missing", where.at(field=f"steps/{missing[0]}"))
    if builder.info.file_format and builder.info.file_format.value not in FORMATS:
        raise BadInputError(f"unsupported TFDS file format {builder.info.file_format.value}", where)
    items = []
    for split_name, split in sorted(builder.info.splits.items()):
        try:
            check_split_name(split_name)
        except ValueError as error:
            raise BadInputError(str(error), where) from None
        lengths = list(split.shard_lengths)
        if len(lengths) != len(split.filepaths):
            lengths = [None] * len(split.filepaths)  # metadata without per-shard counts: nothing to compare
        for shard, length in zip(split.filepaths, lengths):
            if not Path(shard).is_file():
                raise BadInputError(f"shard listed for split '{split_name}' is missing", Location(file=str(shard)))
            items.append({"path": str(shard), "dataset_dir": str(directory), "split": split_name,
                          "num_episodes": None if length is None else int(length)})
    if not items:
        raise BadInputError("the RLDS dataset has no shards", where)
    return items


def repair_is_last(episode: Episode) -> Episode:
    """`episode` with its last step marked `is_last` (and not terminal) if no step was: a window
    cut from a longer episode is a truncation. Other flag errors are left for the schema check."""
    steps = episode["steps"]
    is_last = np.asarray(steps["is_last"], bool)
    if is_last.size == 0 or is_last.any():
        return episode
    is_last = is_last.copy()
    is_last[-1] = True
    is_terminal = np.asarray(steps["is_terminal"], bool).copy()
    is_terminal[-1] = False
    repaired = {**episode, "steps": {**steps, "is_last": is_last, "is_terminal": is_terminal}}
    add_note(repaired, REPAIRED_IS_LAST, "no step was marked is_last; the last step became is_last, a truncation",
             step=len(is_last) - 1)
    return repaired
