"""What an agent needs to know about a dataset's steps, derived from the store's schema.

Networks are built from these specs rather than from an environment, because offline agents
train before (or without) ever touching one. They are JSON-serialisable so a run directory
records them and `eval`/`export` can rebuild the networks without opening the store.
Observations are described as a flat mapping `path -> ArraySpec` ("" for a single array,
"pos" or "state/mode" for dicts), the same flat `a/b` naming the store uses on disk.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from rlstore.agents.errors import AgentError
from rlstore.nest import flatten, unflatten
from rlstore.schema import FieldSpec, Schema

SINGLE = ""  # the flat key of an observation that is one array rather than a dict


@dataclasses.dataclass(frozen=True)
class ArraySpec:
    """One array per step: its shape, numpy dtype name, and whether it is an image."""

    shape: tuple[int, ...]
    dtype: str
    image: bool = False


@dataclasses.dataclass(frozen=True)
class ActionSpec:
    """The action: discrete (`num_values` choices, scalar integer) or continuous (float array)."""

    shape: tuple[int, ...]
    dtype: str
    num_values: int | None = None

    @property
    def discrete(self) -> bool:
        return self.num_values is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclasses.dataclass(frozen=True)
class DataSpecs:
    """Observation and action specs of a dataset's steps."""

    observation: Mapping[str, ArraySpec]
    action: ActionSpec

    def to_json(self) -> dict[str, Any]:
        return {"observation": {key: dataclasses.asdict(spec) for key, spec in self.observation.items()},
                "action": dataclasses.asdict(self.action)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "DataSpecs":
        observation = {key: ArraySpec(tuple(s["shape"]), s["dtype"], s["image"]) for key, s in data["observation"].items()}
        action = data["action"]
        return cls(observation, ActionSpec(tuple(action["shape"]), action["dtype"], action["num_values"]))

    def observation_tensor_specs(self, batched: bool = True) -> Any:
        """Nested tf.TensorSpecs matching the observations a reader yields (leading batch dim if batched)."""
        import tensorflow as tf

        prefix = (None,) if batched else ()
        flat = {key: tf.TensorSpec(prefix + spec.shape, tf.as_dtype(spec.dtype), name=key.replace("/", "_") or "observation")
                for key, spec in self.observation.items()}
        return flat[SINGLE] if SINGLE in flat else unflatten(flat)

    def zeros_observation(self, batch_size: int = 1) -> Any:
        """A batch of all-zero observations: builds a network's variables before training or restoring."""
        import tensorflow as tf

        specs = self.observation_tensor_specs(batched=True)
        return tf.nest.map_structure(lambda s: tf.zeros((batch_size, *s.shape[1:]), s.dtype), specs)


def flat_observation(observation: Any) -> dict[str, Any]:
    """The observation (array or nested dict) as a flat `path -> array` mapping."""
    return flatten(observation) if isinstance(observation, Mapping) else {SINGLE: observation}


def numeric_observation(observation: Any, specs: "DataSpecs") -> Any:
    """An environment's observation cut to the keys the agent's specs have (text keys are not)."""
    if not isinstance(observation, Mapping):
        return observation
    flat = flatten(observation)
    return unflatten({key: flat[key] for key in specs.observation})


def is_image_array(shape: tuple[int, ...], dtype: str) -> bool:
    """Whether a conv torso reads arrays of this shape and dtype: HxWxC uint8 pixels, and HxWxC
    boolean feature planes (MinAtar's 10x10xn frames), whose spatial layout an MLP on the
    flattened array would have to learn from scratch."""
    return len(shape) == 3 and np.dtype(dtype) in (np.uint8, np.bool_)


def is_image(field: FieldSpec) -> bool:
    """Whether networks read this stored field as an image (a conv torso, no standardisation):
    PNG/JPEG images, frames stored once and stacked by the readers (Atari's 84x84xk), and
    image arrays stored as they are (`is_image_array`)."""
    return (field.encoding in ("png", "jpeg") or field.stack > 1
            or (field.dtype != "str" and is_image_array(tuple(field.shape), field.dtype)))


def observation_spec(field: FieldSpec) -> ArraySpec:
    """The spec of what the readers yield for one stored observation field: frames stored once
    are read as stacks of `field.stack` frames on a new last axis (`rlstore.frames`)."""
    shape = tuple(field.shape) + ((field.stack,) if field.stack > 1 else ())
    return ArraySpec(shape, field.dtype, is_image(field))


def specs_from_schema(schema: Schema, num_actions: int | None) -> DataSpecs:
    """Specs of a dataset with this schema; `num_actions` is required for integer actions."""
    observation = {}
    for key, field in schema.steps.items():
        if key == "observation" or key.startswith("observation/"):
            if field.dtype == "str":
                if key == "observation":
                    raise AgentError("the observation is text; agents need numeric observations")
                continue  # text beside numbers (MiniGrid's mission) is stored, but no network reads it
            observation[key.partition("/")[2]] = observation_spec(field)
    if "action" not in schema.steps:
        actions = sorted(k for k in schema.steps if k.startswith("action/"))
        raise AgentError(f"the dataset's actions are a dict ({', '.join(actions)}); agents need a single action array")
    field = schema.steps["action"]
    if np.issubdtype(np.dtype(field.dtype), np.integer):
        if field.shape:
            raise AgentError(f"discrete actions must be scalars, got shape {field.shape}")
        if not num_actions or num_actions < 2:
            raise AgentError(f"a discrete action needs at least 2 values, found {num_actions}")
        return DataSpecs(observation, ActionSpec((), field.dtype, int(num_actions)))
    return DataSpecs(observation, ActionSpec(tuple(field.shape), field.dtype))
