"""From the actor's column batches to whole RLDS episodes, many at a time.

The actor (`rlstore.writeback.WriteBack`) ships its dm_env stream as columns: `step_type`,
`reward`, `discount` and `observation` with one row per timestep, and `action` with one row
per timestep that is not FIRST. `StreamSplitter` cuts those into the finished episodes they
hold, SAR-aligned as RLDS wants them (step t: o_t, a_t and the r_t, d_t that follow a_t; the
last step zero-filled), and keeps the unfinished episode at the end for the next batch. The
actor's extras (`extras` columns, e.g. `{"core_state": {"0": h, "1": c}}`) go with the action's
step as step metadata fields of their own names (`core_state/0`, zero on the last step, like
the action). It is the one episode builder: `rlstore.rollout.EpisodeRecorder` and the online
adder use it too. A few numpy operations per batch instead of Python per step, because at
Catch's ~10 µs per step a per-step builder set the pace of acting.

`EpisodeBatch.check` is `Schema.check` for a whole batch: a handful of vectorised comparisons,
and on failure the same kind of error, naming the episode (its `episode_id`), step and field.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import dm_env
import numpy as np

from rlstore.episode import Episode
from rlstore.errors import BadInputError, Location
from rlstore.nest import flatten, unflatten
from rlstore.schema import FieldSpec, Schema

_FIRST, _LAST = int(dm_env.StepType.FIRST), int(dm_env.StepType.LAST)


@dataclass(frozen=True)
class EpisodeBatch:
    """Finished episodes as flat RLDS step columns (`observation/pos`, `action`, ..., `is_terminal`):
    episode k is rows `starts[k]:starts[k] + lengths[k]` and has `episode_id` `ids[k]`."""

    steps: dict[str, np.ndarray]
    starts: np.ndarray
    lengths: np.ndarray
    ids: list[str]

    def episode(self, k: int) -> Episode:
        """Episode k as an ordinary episode dict (nested steps, `episode_id` metadata)."""
        rows = slice(self.starts[k], self.starts[k] + self.lengths[k])
        return {"steps": unflatten({key: column[rows] for key, column in self.steps.items()}),
                "episode_id": np.str_(self.ids[k])}

    def returns(self) -> np.ndarray:
        """Each episode's sum of rewards."""
        return np.add.reduceat(self.steps["reward"].astype(np.float64), self.starts)

    def check(self, schema: Schema) -> None:
        """Raises BadInputError, naming episode, step and field, unless every episode matches
        `schema` and follows RLDS's rules (finite values, discounts in [0, 1], a zero discount
        only on the final transition). Flags and zero-filling hold by construction."""
        first = Location(episode=self.ids[0])  # every episode of a batch has the same dtypes and shapes
        for missing in sorted(set(schema.steps) - set(self.steps)):
            raise BadInputError("field is missing", first.at(field=f"steps/{missing}"))
        for extra in sorted(set(self.steps) - set(schema.steps)):
            raise BadInputError("field is not in the dataset's schema", first.at(field=f"steps/{extra}"))
        for key, spec in schema.steps.items():
            column = self.steps[key]
            actual = FieldSpec.of(column[0], f"steps/{key}", first)
            if (actual.dtype, actual.shape) != (spec.dtype, spec.shape):
                raise BadInputError(f"expected {spec.describe()}, got {actual.describe()}", first.at(field=f"steps/{key}"))
            if spec.dtype.startswith("float"):
                finite = np.isfinite(column).reshape(len(column), -1).all(axis=1)
                if not finite.all():
                    row = int(np.flatnonzero(~finite)[0])
                    kind = "NaN" if np.isnan(column[row]).any() else "infinite"
                    raise BadInputError(f"{kind} value", self._where(row, f"steps/{key}"))
        discount, is_last = self.steps["discount"], self.steps["is_last"]
        transition = ~is_last
        bad = np.flatnonzero(transition & ((discount < 0) | (discount > 1)))
        if bad.size:
            raise BadInputError("discount must lie in [0, 1]", self._where(int(bad[0]), "steps/discount"))
        final = np.append(is_last[1:], True)  # the transition into an episode's last step
        early = np.flatnonzero(transition & ~final & (discount == 0))
        if early.size:
            raise BadInputError("discount is 0 before the final transition: an episode ends at its first zero "
                                "discount", self._where(int(early[0]), "steps/discount"))

    def _where(self, row: int, field: str) -> Location:
        k = int(np.searchsorted(self.starts, row, side="right")) - 1
        return Location(episode=self.ids[k], step=row - int(self.starts[k]), field=field)


class StreamSplitter:
    """Cuts the actor's column batches into `EpisodeBatch`es; episode k of the run is
    `<run_id>:<k>`. An episode abandoned by a new `observe_first` is dropped, as
    `EpisodeRecorder` drops it; the unfinished one at the end of a batch waits for the next."""

    def __init__(self, run_id: str):
        self._run_id = run_id
        self._next_episode = 0
        self._tail: dict[str, Any] | None = None  # rows of the episode in progress

    def split(self, batch: Mapping[str, Any]) -> EpisodeBatch | None:
        """The episodes `batch` finishes, or None."""
        columns = {"step_type": batch["step_type"], "reward": batch["reward"], "discount": batch["discount"],
                   **_prefixed("observation", batch["observation"]), **_prefixed("action", batch["action"]),
                   **_prefixed("extras", batch.get("extras"))}
        if self._tail is not None:
            columns = {key: np.concatenate([part[key] for part in (self._tail, columns) if key in part])
                       for key in {**self._tail, **columns}}
        step_type = columns["step_type"]
        first, last = step_type == _FIRST, step_type == _LAST
        rows = np.arange(len(step_type))
        latest_first = np.maximum.accumulate(np.where(first, rows, -1))
        latest_last = np.maximum.accumulate(np.where(last, rows, -1))
        orphans = np.flatnonzero(~first & (latest_first <= np.append(-1, latest_last[:-1])))
        if orphans.size:
            raise BadInputError("observe() without observe_first(): every episode starts with observe_first",
                                Location(episode=f"{self._run_id}:{self._next_episode}"))
        action_row = np.cumsum(~first) - 1  # a non-FIRST row's index into the action columns
        ends = np.flatnonzero(last)
        tail_start = latest_first[-1] if latest_first[-1] > latest_last[-1] else len(rows)
        self._tail = _rows(columns, tail_start, int(action_row[tail_start - 1]) + 1 if tail_start else 0)
        if not ends.size:
            return None
        starts = latest_first[ends]
        lengths = ends - starts + 1
        offsets = np.cumsum(lengths) - lengths
        taken = np.arange(lengths.sum()) + np.repeat(starts - offsets, lengths)  # rows of the finished episodes
        is_last = last[taken]
        following = np.minimum(taken + 1, len(rows) - 1)  # step t's action, reward, discount come with t+1
        action_index = np.maximum(action_row[following], 0)
        steps = {key: column[taken] for key, column in columns.items() if _is_field(key, "observation")}
        steps.update({key: _zero_last(column[action_index], is_last)
                      for key, column in columns.items() if _is_field(key, "action")})
        steps.update({key.partition("/")[2]: _zero_last(column[action_index], is_last)  # step metadata
                      for key, column in columns.items() if _is_field(key, "extras")})
        steps["reward"] = _zero_last(columns["reward"][following].astype(np.float32), is_last)
        steps["discount"] = _zero_last(columns["discount"][following].astype(np.float32), is_last)
        steps["is_first"] = first[taken]
        steps["is_last"] = is_last
        steps["is_terminal"] = is_last & (columns["discount"][taken] == 0)
        ids = [f"{self._run_id}:{index}" for index in range(self._next_episode, self._next_episode + len(ends))]
        self._next_episode += len(ends)
        return EpisodeBatch(steps, offsets, lengths, ids)


def _prefixed(name: str, value: Any) -> dict[str, np.ndarray]:
    """Flat columns `name` or `name/<key>...` of one (possibly nested, possibly absent) field."""
    if value is None:
        return {}
    return flatten({name: value})


def _rows(columns: Mapping[str, np.ndarray], start: int, action_start: int) -> dict[str, np.ndarray] | None:
    """The rows from `start` on (actions from `action_start` on), or None if there are none."""
    if start >= len(columns["step_type"]):
        return None
    return {key: column[action_start if _is_field(key, "action") or _is_field(key, "extras") else start:]
            for key, column in columns.items()}


def _is_field(key: str, name: str) -> bool:
    """Whether flat column `key` is field `name` or one of its nested parts."""
    return key == name or key.startswith(name + "/")


def _zero_last(column: np.ndarray, is_last: np.ndarray) -> np.ndarray:
    """RLDS zero-fills action, reward and discount on an episode's last step: they follow no action."""
    column[is_last] = 0
    return column
