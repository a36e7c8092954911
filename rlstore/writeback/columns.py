"""The one recording of an actor's steps, and its column batches.

`StepRecorder` is what every writer of a dm_env stream records into (the write-back writer,
the online actors' adder, `rlstore.rollout`): per step it keeps references to the timestep's
fields, the action and the step's extras, nothing more. `ColumnBatcher` turns what was recorded
into one column batch, from which `rlstore.writeback.stream.StreamSplitter` builds episodes.

A batch is `step_type` (int8), `reward` and `discount` (float64) and `observation` with one row
per timestep, and `action` and `extras` with one row per timestep that is not FIRST (None if
there is none); observations, actions and extras that are dicts become dicts of columns.
Extras are what the actor knew when it chose the action (e.g. a recurrent state): they are
stored with the action's step as step metadata. This runs on the acting thread,
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
from rlstore.frames import push
from rlstore.nest import flatten
from rlstore.schema import FieldSpec

_FIRST, _MID, _LAST = (int(kind) for kind in dm_env.StepType)
_LAST_STEP = dm_env.StepType.LAST  # compared with each timestep's step_type as is


class ColumnBatcher:
    """Makes the column batches of one writer's flushes (it tracks episodes across them)."""

    def __init__(self, run_id: str):
        self._run_id = run_id
        self._shipped_steps = 0  # timesteps of the episode in progress already in earlier batches
        self._observations, self._actions, self._extras = _Field("observation"), _Field("action"), _Field("extras")

    def columns(self, observations: Sequence[Any], rewards: Sequence[Any], discounts: Sequence[Any],
                actions: Sequence[Any], extras: Sequence[Any], firsts: Sequence[int], ends: Sequence[int], *,
                episodes: int) -> dict[str, Any]:
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
                "action": self._actions.stack(actions, locate_action) if actions else None,
                "extras": self._extras.stack(extras, locate_action) if extras and extras[0] is not None else None}


class StepRecorder:
    """Records a dm_env stream step by step: `observe_first(timestep)`, `observe(action,
    next_timestep, extras)`; `take()` returns everything recorded since the last take as one
    column batch. Per step this is a few list appends: it runs on the acting thread.

    With `frame_stack` k > 1 the observations are frame stacks [*S, k] (an `atari:` env's): only
    each step's newest frame is recorded, so the store holds one frame per step and readers
    rebuild the stacks (`rlstore.frames`). Each stack is checked to be what `rlstore.frames.push`
    makes of the previous one and its newest frame (a k·frame comparison, ~10 us at 84x84x4),
    so a stored episode always rebuilds exactly the observations the agent saw."""

    def __init__(self, run_id: str, frame_stack: int = 1):
        self.run_id = run_id
        self.episodes = 0  # finished episodes recorded
        self._batcher = ColumnBatcher(run_id)
        self._frame_stack = frame_stack
        self._last_stack: Any = None  # the episode's previous observation, with frame_stack > 1
        self._step = 0  # timesteps recorded in the episode in progress
        self._clear()

    def _clear(self) -> None:
        # The timesteps' fields, not the timesteps: arrays, floats and scalars are not tracked by
        # Python's garbage collector, so holding them until a take does not push thousands of
        # objects into the oldest generation, whose collections take ~0.2 s where TF is loaded.
        self.observations: list[Any] = []
        self._rewards: list[Any] = []
        self._discounts: list[Any] = []
        self._actions: list[Any] = []
        self._extras: list[Any] = []
        self._firsts: list[int] = []  # positions of observe_first's timesteps
        self._lasts: list[int] = []  # ... and of LAST timesteps

    def observe_first(self, timestep: dm_env.TimeStep) -> None:
        self._firsts.append(len(self.observations))
        self._step, self._last_stack = 0, None
        self.observations.append(self._recorded(timestep.observation))
        self._rewards.append(None)
        self._discounts.append(None)

    def _recorded(self, observation: Any) -> Any:
        """What is kept of an observation: itself, or with frame stacks its newest frame."""
        if self._frame_stack == 1:
            return observation
        stack, k = np.asarray(observation), self._frame_stack
        problem = None
        if stack.ndim < 2 or stack.shape[-1] != k:
            problem = f"observation {stack.dtype}{list(stack.shape)} is not a stack of {k} frames on the last axis"
        elif not np.array_equal(stack, push(self._last_stack, stack[..., -1], k)):
            problem = (f"an episode's first observation must stack {k - 1} all-zero frames and its frame"
                       if self._last_stack is None else
                       "this observation is not the previous one shifted by one frame, its newest frame last")
        if problem:
            where = Location(episode=f"{self.run_id}:{self.episodes}", step=self._step, field="observation")
            raise BadInputError(problem, where)
        self._last_stack = stack
        self._step += 1
        return stack[..., -1].copy()

    def observe(self, action: Any, next_timestep: dm_env.TimeStep, extras: Any = None) -> bool:
        """Records a step; True when it ended the episode."""
        self._actions.append(action)
        self._extras.append(extras)
        self._rewards.append(next_timestep.reward)
        self._discounts.append(next_timestep.discount)
        observations = self.observations
        observations.append(self._recorded(next_timestep.observation) if self._frame_stack > 1
                            else next_timestep.observation)
        if next_timestep.step_type == _LAST_STEP:
            self._lasts.append(len(observations) - 1)
            self.episodes += 1
            return True
        return False

    def take(self) -> dict[str, Any] | None:
        """The column batch of every step recorded since the last take (None if there are none);
        raises BadInputError, naming episode, step and field, for a value unlike the first."""
        if not self.observations:
            return None
        pending = (self.observations, self._rewards, self._discounts, self._actions, self._extras, self._firsts,
                   self._lasts)
        self._clear()
        return self._batcher.columns(*pending, episodes=self.episodes)


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
