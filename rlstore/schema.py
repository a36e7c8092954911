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
from rlstore.images import IMAGE_FORMATS, EncodedImages, ImageEncoding, check_headers
from rlstore.nest import flatten, unflatten

_FLOAT_STEP_FIELDS = ("reward", "discount")


@dataclass(frozen=True)
class FieldSpec:
    """One leaf field: numpy dtype name ('str' for text), shape of one step, encoding.

    `stack` > 1 marks a field stored as single frames whose readers rebuild stacks of the last
    `stack` frames (`rlstore.frames`); `shape` is then the shape of one frame. `quality` is the
    JPEG quality rlstore encodes raw images of a 'jpeg' field at (None: kept as the source
    encoded them, or not JPEG).
    """

    dtype: str
    shape: tuple[int, ...]
    encoding: str = "none"
    stack: int = 1
    quality: int | None = None

    @classmethod
    def of_column(cls, column: Any, field: str, where: Location) -> "FieldSpec":
        """The spec of a step column: an already-encoded image column keeps its format."""
        if isinstance(column, EncodedImages):
            if len(column) == 0:
                raise BadInputError("episode has no steps", where)
            return cls("uint8", column.image_shape, column.image_format)
        return cls.of(np.asarray(column)[0], field, where)

    @property
    def is_image(self) -> bool:
        """An [H, W, C] uint8 image (whatever its encoding), as a conv torso would see it."""
        return (self.encoding in IMAGE_FORMATS or
                (self.dtype == "uint8" and len(self.shape) == 3 and self.shape[-1] in (1, 3, 4) and self.stack == 1))

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
        suffix += f" q{self.quality}" if self.quality else ""
        stacked = f", frames stacked by {self.stack}" if self.stack > 1 else ""
        return f"{self.dtype}[{shape}{suffix}{stacked}]"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.stack == 1:
            del data["stack"]  # versions written before frame stacks existed read back equal
        if self.quality is None:
            del data["quality"]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "FieldSpec":
        return cls(data["dtype"], tuple(data["shape"]), data.get("encoding", "none"), data.get("stack", 1),
                   data.get("quality"))


@dataclass(frozen=True)
class Schema:
    """Flat field specs for steps (`observation/pos`, `action`, ...) and episode metadata."""

    steps: dict[str, FieldSpec]
    episode: dict[str, FieldSpec]

    @classmethod
    def derive(cls, episode: Episode, where: Location = Location()) -> "Schema":
        """Derives the schema from one episode (checked for RLDS alignment first)."""
        check_alignment(episode, where)
        steps = {key: FieldSpec.of_column(value, key, where) for key, value in flatten(episode["steps"]).items()}
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

    def with_frames(self, field: str, stack: int, encoding: str = "zlib") -> "Schema":
        """This schema with step field `field` stored as single frames, stacked by `stack` on
        reading. Each frame is a TFDS Tensor (stock TFDS decodes it) in `encoding`: "zlib", each
        frame compressed on its own (TFRecord shards), or "bytes", raw, for parquet shards whose
        zstd column compresses an episode's frames together (`rlstore.shard_formats`)."""
        spec = self.steps[field]
        if spec.dtype != "uint8":
            raise BadInputError(f"frames must be uint8, got {spec.dtype}", Location(field=f"steps/{field}"))
        return Schema({**self.steps, field: FieldSpec(spec.dtype, spec.shape, encoding, stack)}, self.episode)

    def with_image_encodings(self, encodings: Mapping[str, ImageEncoding]) -> "Schema":
        """This schema with the image step fields named in `encodings` stored in the chosen
        encoding; key '*' applies to every image field not named. Only uint8 [H, W, C] image
        fields take one; images a source stored encoded must keep their format (`check` holds
        them to it)."""
        steps = dict(self.steps)
        for field in encodings:
            if field == "*":
                continue
            spec = steps.get(field)
            if spec is None:
                raise BadInputError(f"--image-encoding names no step field of the input; image fields: "
                                    f"{', '.join(k for k, v in steps.items() if v.is_image) or 'none'}",
                                    Location(field=f"steps/{field}"))
            if not spec.is_image:
                raise BadInputError(f"an image encoding needs a uint8 [H, W, C] image field, this is {spec.describe()}",
                                    Location(field=f"steps/{field}"))
        for field, spec in steps.items():
            choice = encodings.get(field, encodings.get("*") if spec.is_image else None)
            if choice is None:
                continue
            if choice.encoding == "jpeg" and spec.shape[-1] not in (1, 3):
                raise BadInputError(f"JPEG holds 1 or 3 channels, the images have {spec.shape[-1]}",
                                    Location(field=f"steps/{field}"))
            steps[field] = FieldSpec(spec.dtype, spec.shape, choice.encoding, spec.stack, choice.quality)
        return Schema(steps, self.episode)

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
        value = values[key]
        if per_step:
            actual = FieldSpec.of_column(value, prefix + key, where)
        else:
            actual = FieldSpec.of(np.asarray(value), prefix + key, where)
        if (actual.dtype, actual.shape) != (spec.dtype, spec.shape):
            raise BadInputError(f"expected {spec.describe()}, got {actual.describe()}", where.at(field=prefix + key))
        if isinstance(value, EncodedImages):
            if spec.encoding not in IMAGE_FORMATS:
                raise BadInputError(f"the source's images are {value.image_format.upper()}; they are kept as "
                                    f"they came, so the field cannot be stored as {spec.encoding}",
                                    where.at(field=prefix + key))
            check_headers(value, spec.encoding, spec.shape, where.at(field=prefix + key))


def _tfds_feature(spec: FieldSpec):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    if spec.encoding in IMAGE_FORMATS:
        return tfds.features.Image(shape=spec.shape, dtype=np.uint8, encoding_format=spec.encoding)
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
