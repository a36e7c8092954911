"""The actor's side of a flush: timesteps and actions into the worker's column batch.

A batch is `step_type` (int8), `reward` and `discount` (float64) and `observation` with one row
per timestep, and `action` with one row per timestep that is not FIRST (None if there is none);
observations and actions that are dicts become dicts of columns. This runs on the acting thread,
so it is a few numpy calls per field per flush and nothing per step: `np.array` over each field's
values, then a comparison of each column's dtype and shape with what the field had first. Only
when that fails are values inspected one by one, to report the first that differs with its
episode, step and field (`rlstore.writeback.stream` checks the rest in the worker).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import dm_env
import numpy as np

from rlstore.errors import BadInputError, Location
from rlstore.nest import flatten
from rlstore.schema import FieldSpec

_FIRST, _MID, _LAST = (int(kind) for kind in dm_env.StepType)


class ColumnBatcher:
    """Makes the column batches of one writer's flushes (it tracks episodes across them)."""

    def __init__(self, run_id: str):
        self._run_id = run_id
        self._shipped_steps = 0  # timesteps of the episode in progress already in earlier batches
        self._observations, self._actions = _Field("observation"), _Field("action")

    def columns(self, observations: Sequence[Any], rewards: Sequence[Any], discounts: Sequence[Any],
                actions: Sequence[Any], firsts: Sequence[int], ends: Sequence[int], *, episodes: int) -> dict[str, Any]:
        """The batch of a flush: the fields of its timesteps (a FIRST one's reward and discount
        are None), the actions, the positions of the timesteps given to `observe_first` and of
        the LAST ones (step types come from those: converting dm_env's enums one by one would
        cost more), and the number of episodes finished so far."""
        firsts, ends = np.array(firsts, np.int64), np.array(ends, np.int64)
        step_type = np.full(len(observations), _MID, np.int8)
        step_type[firsts] = _FIRST
        step_type[ends] = _LAST
        episodes_before, shipped_steps = episodes - len(ends), self._shipped_steps
        self._shipped_steps = len(step_type) - int(firsts[-1]) if firsts.size else shipped_steps + len(step_type)

        def locate(position: int) -> Location:
            """Where the timestep at `position` is: its episode's id and step."""
            episode = episodes_before + int(np.searchsorted(ends, position))
            started = firsts[firsts <= position]
            step = position - int(started[-1]) if started.size else shipped_steps + position
            return Location(episode=f"{self._run_id}:{episode}", step=step)

        def locate_action(position: int) -> Location:  # the action that led to timestep t+1 is step t's
            where = locate(int(np.flatnonzero(step_type != _FIRST)[position]))
            return where.at(step=where.step - 1)

        return {"step_type": step_type,
                "reward": _numbers("reward", rewards, locate),
                "discount": _numbers("discount", discounts, locate),
                "observation": self._observations.stack(observations, locate),
                "action": self._actions.stack(actions, locate_action) if actions else None}


def _stack(values: Sequence[Any]) -> Any:
    if isinstance(values[0], dict):
        return {key: _stack([value[key] for value in values]) for key in values[0]}
    return np.array(values)


def _specs(name: str, value: Any, where: Location) -> dict[str, FieldSpec]:
    """The flat field specs of one value of field `name` (an observation or an action)."""
    return {f"steps/{key}": FieldSpec.of(leaf, f"steps/{key}", where) for key, leaf in flatten({name: value}).items()}


class _Field:
    """Stacks one field (observation or action) of a flush's timesteps, holding every flush to
    the specs the field's first value had. Stacking is one `np.array` per leaf and a comparison
    of the columns' dtypes and shapes; only when those differ (or stacking fails) are the values
    inspected one by one, to name the first that differs."""

    def __init__(self, name: str):
        self.name = name
        self.specs: dict[str, FieldSpec] | None = None
        self._layout: list[tuple[np.dtype, tuple[int, ...]]] | None = None  # of columns known to match

    def stack(self, values: Sequence[Any], locate: Callable[[int], Location]) -> Any:
        """The values stacked (per leaf); raises BadInputError naming the first that differs."""
        if self.specs is None:
            self.specs = _specs(self.name, values[0], locate(0))
        try:
            stacked = _stack(values)
            layout = [(column.dtype, column.shape[1:]) for column in flatten({self.name: stacked}).values()]
            if layout == self._layout:
                return stacked
            if _specs(self.name, _first_row(stacked), Location()) == self.specs:
                self._layout = layout
                return stacked
        except (ValueError, TypeError, KeyError, BadInputError):
            pass
        for position, value in enumerate(values):
            specs = _specs(self.name, value, locate(position))
            for key in sorted(set(specs) | set(self.specs)):
                want, got = self.specs.get(key), specs.get(key)
                if want != got:
                    reason = (f"expected {want.describe()}, got {got.describe()}" if want and got else
                              "field is missing" if want else "field was not in the first value")
                    raise BadInputError(reason, locate(position).at(field=key))
        raise BadInputError(f"cannot stack these {self.name} values", locate(0).at(field=f"steps/{self.name}"))


def _first_row(stacked: Any) -> Any:
    return {key: _first_row(value) for key, value in stacked.items()} if isinstance(stacked, dict) else stacked[0]


def _numbers(name: str, values: tuple, locate: Callable[[int], Location]) -> np.ndarray:
    """Rewards or discounts as float64 (a FIRST timestep's None becomes NaN; it is never stored)."""
    try:
        column = np.array(values, np.float64)
        if column.ndim == 1:
            return column
    except (ValueError, TypeError):
        pass
    position = next((i for i, value in enumerate(values) if not _is_number(value)), 0)
    raise BadInputError(f"{name} must be a number, got {values[position]!r}", locate(position).at(field=f"steps/{name}"))


def _is_number(value: Any) -> bool:
    if value is None:
        return True
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return np.ndim(value) == 0
