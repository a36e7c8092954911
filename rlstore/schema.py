"""The feature schema of a dataset, derived from its data.

A schema names every step field and episode-metadata field with its dtype, per-step shape and
on-disk encoding. It has three jobs:
- check each incoming episode (dtype, shape, missing or extra fields, non-finite values);
- encode an episode as the tf.train.Example TFDS expects for `{'steps': Dataset(...), ...}`,
  without importing TensorFlow (Beam workers do this);
- build the equivalent `tfds.features.FeaturesDict`, whose `features.json` lets stock TFDS read
  the segment.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np

from rlstore.encoding import encode_episodes
from rlstore.episode import Episode, check_alignment, episode_length
from rlstore.errors import BadInputError, Location
from rlstore.nest import flatten, unflatten

_FLOAT_STEP_FIELDS = ("reward", "discount")


@dataclass(frozen=True)
class FieldSpec:
    """One leaf field: numpy dtype name ('str' for text), shape of one step, encoding.

    `stack` > 1 marks a field stored as single frames whose readers rebuild stacks of the last
    `stack` frames (`rlstore.frames`); `shape` is then the shape of one frame.
    """

    dtype: str
    shape: tuple[int, ...]
    encoding: str = "none"
    stack: int = 1

    @classmethod
    def of(cls, value: np.ndarray, field: str, where: Location) -> "FieldSpec":
        """The spec of one value (a single step's, or an episode-metadata value)."""
        value = np.asarray(value)
        kind = value.dtype.kind
        if kind == "O":
            raise BadInputError("object arrays are not supported: store numbers, booleans or text", where.at(field=field))
        if 0 in value.shape:
            # Such a field encodes to nothing; TFDS's decoders then divide by zero (SIGFPE).
            raise BadInputError(f"a zero-size dimension in shape {list(value.shape)} is not supported",
                                where.at(field=field))
        if kind in "US":
            return cls("str", value.shape)
        if kind not in "biuf":
            raise BadInputError(f"unsupported dtype {value.dtype}", where.at(field=field))
        is_image = value.dtype == np.uint8 and value.ndim == 3 and value.shape[-1] in (1, 3, 4) and min(value.shape[:2]) > 1
        # TFDS's float lists are float32; 64-bit floats keep every bit as raw bytes instead.
        encoding = "png" if is_image else "bytes" if value.dtype == np.float64 else "none"
        return cls(value.dtype.name, tuple(int(d) for d in value.shape), encoding)

    def describe(self) -> str:
        shape = "x".join(map(str, self.shape)) or "scalar"
        suffix = "" if self.encoding == "none" else f", {self.encoding}"
        stacked = f", frames stacked by {self.stack}" if self.stack > 1 else ""
        return f"{self.dtype}[{shape}{suffix}{stacked}]"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.stack == 1:
            del data["stack"]  # versions written before frame stacks existed read back equal
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "FieldSpec":
        return cls(data["dtype"], tuple(data["shape"]), data.get("encoding", "none"), data.get("stack", 1))


@dataclass(frozen=True)
class Schema:
    """Flat field specs for steps (`observation/pos`, `action`, ...) and episode metadata."""

    steps: dict[str, FieldSpec]
    episode: dict[str, FieldSpec]

    @classmethod
    def derive(cls, episode: Episode, where: Location = Location()) -> "Schema":
        """Derives the schema from one episode (checked for RLDS alignment first)."""
        check_alignment(episode, where)
        steps = {key: FieldSpec.of(np.asarray(value)[0], key, where) for key, value in flatten(episode["steps"]).items()}
        meta = {key: FieldSpec.of(value, key, where) for key, value in flatten(_metadata(episode)).items()}
        for name in ("action", *_FLOAT_STEP_FIELDS):
            for key, spec in steps.items():
                if (key == name or key.startswith(name + "/")) and spec.dtype in ("str", "bool"):
                    raise BadInputError(f"{name} must be numeric, got {spec.dtype}", where.at(field=f"steps/{key}"))
        return cls(steps, meta)

    # ---- serialisation of the schema itself -------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"steps": {k: v.to_json() for k, v in self.steps.items()},
                "episode": {k: v.to_json() for k, v in self.episode.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Schema":
        def specs(part):
            return {k: FieldSpec.from_json(v) for k, v in part.items()}

        return cls(specs(data["steps"]), specs(data["episode"]))

    def with_frames(self, field: str, stack: int) -> "Schema":
        """This schema with step field `field` stored as single frames, each compressed on its own
        with zlib (TFDS's Tensor encoding, so stock TFDS decodes it), stacked by `stack` on reading."""
        spec = self.steps[field]
        if spec.dtype != "uint8":
            raise BadInputError(f"frames must be uint8, got {spec.dtype}", Location(field=f"steps/{field}"))
        return Schema({**self.steps, field: FieldSpec(spec.dtype, spec.shape, "zlib", stack)}, self.episode)

    def describe(self) -> dict[str, str]:
        described = {f"steps/{k}": v.describe() for k, v in self.steps.items()}
        described.update({k: v.describe() for k, v in self.episode.items()})
        return described

    def difference(self, other: "Schema") -> str | None:
        """A sentence naming the first field where two schemas disagree, or None."""
        for part, mine, theirs in (("steps/", self.steps, other.steps), ("", self.episode, other.episode)):
            for key in sorted(set(mine) | set(theirs)):
                a, b = mine.get(key), theirs.get(key)
                if a != b:
                    return (f"field '{part}{key}' is {b.describe() if b else 'absent'} here "
                            f"but {a.describe() if a else 'absent'} in the dataset")
        return None

    # ---- per-episode checks ---------------------------------------------------------------

    def check(self, episode: Episode, where: Location = Location()) -> int:
        """Raises BadInputError unless `episode` matches this schema; returns its length."""
        check_alignment(episode, where)
        steps = flatten(episode["steps"])
        length = episode_length(episode["steps"], where)
        _check_fields(self.steps, steps, where, per_step=True)
        _check_fields(self.episode, flatten(_metadata(episode)), where, per_step=False)
        for key, spec in self.steps.items():
            if spec.dtype.startswith("float"):
                values = np.asarray(steps[key])
                finite = np.isfinite(values).reshape(length, -1).all(axis=1)
                if not finite.all():
                    step = int(np.flatnonzero(~finite)[0])
                    kind = "NaN" if np.isnan(values[step]).any() else "infinite"
                    raise BadInputError(f"{kind} value", where.at(step=step, field=f"steps/{key}"))
        return length

    # ---- encoding ---------------------------------------------------------------------------

    def encode(self, episode: Episode) -> bytes:
        """The serialised tf.train.Example for a checked episode, as TFDS would write it (many
        episodes at once: `rlstore.encoding.encode_episodes`, which this is for one)."""
        steps = {key: np.asarray(column) for key, column in flatten(episode["steps"]).items()}
        length = len(steps["is_first"])
        metadata = {key: [value] for key, value in flatten(_metadata(episode)).items()}
        return encode_episodes(self, steps, np.zeros(1, np.int64), np.array([length]), metadata)[0]

    def tfds_features(self):
        """The `tfds.features.FeaturesDict` matching `encode` (imports TFDS)."""
        import tensorflow_datasets as tfds

        steps = unflatten({k: _tfds_feature(v) for k, v in self.steps.items()})
        meta = unflatten({k: _tfds_feature(v) for k, v in self.episode.items()})
        return tfds.features.FeaturesDict({"steps": tfds.features.Dataset(_dicts(steps)), **_dicts(meta)})


def _metadata(episode: Episode) -> dict[str, Any]:
    return {k: v for k, v in episode.items() if k != "steps"}


def _check_fields(specs: Mapping[str, FieldSpec], values: Mapping[str, Any], where: Location, per_step: bool) -> None:
    prefix = "steps/" if per_step else ""
    missing = sorted(set(specs) - set(values))
    if missing:
        raise BadInputError("field is missing", where.at(field=prefix + missing[0]))
    extra = sorted(set(values) - set(specs))
    if extra:
        raise BadInputError("field is not in the dataset's schema", where.at(field=prefix + extra[0]))
    for key, spec in specs.items():
        value = np.asarray(values[key])
        actual = FieldSpec.of(value[0] if per_step else value, prefix + key, where)
        if (actual.dtype, actual.shape) != (spec.dtype, spec.shape):
            raise BadInputError(f"expected {spec.describe()}, got {actual.describe()}", where.at(field=prefix + key))


def _tfds_feature(spec: FieldSpec):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    if spec.encoding == "png":
        return tfds.features.Image(shape=spec.shape, dtype=np.uint8, encoding_format="png")
    dtype = tf.string if spec.dtype == "str" else np.dtype(spec.dtype)
    if not spec.shape and spec.encoding == "none":
        return tfds.features.Scalar(dtype=dtype)
    doc = None
    if spec.stack > 1:
        doc = (f"one frame per step; the agent's observation at step t stacks the last {spec.stack} frames of its "
               f"episode on a new last axis, oldest first, with all-zero frames before the first step")
    return tfds.features.Tensor(shape=spec.shape, dtype=dtype, encoding=tfds.features.Encoding(spec.encoding), doc=doc)


def _dicts(tree: Mapping[str, Any]):
    import tensorflow_datasets as tfds

    return {k: tfds.features.FeaturesDict(_dicts(v)) if isinstance(v, dict) else v for k, v in tree.items()}
