"""RLDS episodes in memory, and the alignment rules every stored episode obeys.

An episode is `{'steps': {field: array[T, ...]}, **episode_metadata}` with SAR alignment: step t
holds (o_t, a_t, r_t, d_t), where r_t and d_t follow a_t. The last step carries the final
observation with `is_last=True`; its action, reward and discount are zero-filled.
`is_terminal=True` only on the last step of an episode that really ended (the discount of the
transition into it is 0). A time-limit cut is `is_last=True, is_terminal=False`, with a non-zero
discount, so learners bootstrap across it.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from rlstore.errors import BadInputError, Location
from rlstore.nest import flatten

Episode = dict[str, Any]

RLDS_STEP_FIELDS = ("observation", "action", "reward", "discount", "is_first", "is_last", "is_terminal")
_ZERO_FILLED = ("action", "reward", "discount")


def make_episode(
    observation: Any,
    action: Any,
    reward: np.ndarray,
    discount: np.ndarray,
    is_terminal: bool,
    step_metadata: Mapping[str, Any] | None = None,
    episode_metadata: Mapping[str, Any] | None = None,
) -> Episode:
    """Builds an RLDS episode from SAR-aligned arrays of equal length T.

    Values of action, reward and discount on the last step are not part of any transition, so
    they are replaced with zeros, as RLDS prescribes.
    """
    steps: dict[str, Any] = {"observation": observation, "action": action, "reward": reward, "discount": discount}
    steps.update(step_metadata or {})
    length = episode_length(steps)
    steps = zero_fill_last_step(steps)
    steps["is_first"] = np.arange(length) == 0
    steps["is_last"] = np.arange(length) == length - 1
    steps["is_terminal"] = steps["is_last"] & bool(is_terminal)
    return {"steps": steps, **(episode_metadata or {})}


def zero_fill_last_step(steps: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `steps` whose last action, reward and discount are 0: they follow no action."""
    return {key: _zero_last(value) if key in _ZERO_FILLED else value for key, value in steps.items()}


def _zero_last(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _zero_last(v) for k, v in value.items()}
    value = np.array(value, copy=True)
    if len(value):
        value[-1] = 0
    return value


def episode_length(steps: Mapping[str, Any], where: Location = Location()) -> int:
    """The common length of every step field; unequal lengths are bad input."""
    lengths = {key: np.shape(value)[0] if np.ndim(value) else None for key, value in flatten(steps).items()}
    scalar = [key for key, n in lengths.items() if n is None]
    if scalar:
        raise BadInputError("a step field must have one row per step, got a scalar", where.at(field=f"steps/{scalar[0]}"))
    distinct = sorted(set(lengths.values()))
    if len(distinct) > 1:
        detail = ", ".join(f"{key}={n}" for key, n in sorted(lengths.items()))
        longest = max(lengths, key=lengths.get)
        raise BadInputError(f"step arrays have unequal lengths ({detail})", where.at(field=f"steps/{longest}"))
    if not distinct or distinct[0] == 0:
        raise BadInputError("episode has no steps", where)
    return distinct[0]


def check_alignment(episode: Episode, where: Location = Location()) -> None:
    """Raises BadInputError unless the episode follows RLDS's SAR alignment rules."""
    steps = episode.get("steps")
    if not isinstance(steps, Mapping):
        raise BadInputError("episode has no 'steps'", where)
    for name in RLDS_STEP_FIELDS:
        if name not in steps:
            raise BadInputError("required RLDS step field is missing", where.at(field=f"steps/{name}"))
    length = episode_length(steps, where)
    is_first = np.asarray(steps["is_first"], dtype=bool)
    is_last = np.asarray(steps["is_last"], dtype=bool)
    is_terminal = np.asarray(steps["is_terminal"], dtype=bool)
    expected_first = np.arange(length) == 0
    expected_last = np.arange(length) == length - 1
    for name, actual, expected in (("is_first", is_first, expected_first), ("is_last", is_last, expected_last)):
        bad = np.flatnonzero(actual != expected)
        if bad.size:
            raise BadInputError(f"{name} must be True on exactly the {'first' if name == 'is_first' else 'last'} step",
                                where.at(step=int(bad[0]), field=f"steps/{name}"))
    early_terminal = np.flatnonzero(is_terminal[:-1])
    if early_terminal.size:
        raise BadInputError("is_terminal may only be True on the last step", where.at(step=int(early_terminal[0]), field="steps/is_terminal"))
    discount = np.asarray(steps["discount"])
    if discount.dtype.kind not in "fiu":
        raise BadInputError(f"discount must be numeric, got {discount.dtype}", where.at(field="steps/discount"))
    transitions = discount[:-1]
    out_of_range = np.flatnonzero((transitions < 0) | (transitions > 1))
    if out_of_range.size:
        raise BadInputError("discount must lie in [0, 1]", where.at(step=int(out_of_range[0]), field="steps/discount"))
    zero = np.flatnonzero(transitions == 0)
    if zero.size and zero[0] < length - 2:
        raise BadInputError("discount is 0 before the final transition: an episode ends at its first zero discount",
                            where.at(step=int(zero[0]), field="steps/discount"))
    if length >= 2:
        if is_terminal[-1] and transitions[-1] != 0:
            raise BadInputError("is_terminal is True but the final transition's discount is not 0",
                                where.at(step=length - 2, field="steps/discount"))
        if not is_terminal[-1] and transitions[-1] == 0:
            raise BadInputError("the final transition's discount is 0 but is_terminal is False "
                                "(a time-limit cut must keep a non-zero discount)", where.at(step=length - 2, field="steps/discount"))

