"""The Reverb tables a store version is served through: their layout, options and signatures.

Two tables, named for what their items are:

`transitions` — one item per step that has an action (T-1 per episode of T steps), n-step,
exactly the rows of `rlstore.reading.transitions`. An item is the flat dict

    observation       the step's observation, as stored (a tensor, or a nested dict of them)
    action            the step's action, as stored
    reward            sum_{k<m} (prod_{j<k} gamma d_{t+j}) r_{t+k}   shape of `reward`
    discount          prod_{k<m} gamma d_{t+k}  (0 after a terminal; gamma^m through a time-limit cut)
    next_observation  o_{t+m}, m = min(n_step, steps left)

with `reward` and `discount` in the reward's float dtype (float32 for integer rewards), as
defined in `rlstore.reading.transforms.episode_transitions`. The target is
`reward + discount * V(next_observation)`: gamma is already inside `discount`. With a layout's
`one_step` (for learners with both a 1-step and an n-step loss, such as DQfD) an item also has
the 1-step target of the same step: `one_step_reward`, `one_step_discount`,
`one_step_next_observation` (the n=1 rows; identical to the n-step ones when n_step is 1).

`sequences` — fixed-length windows for recurrent learners (R2D2/R2D3), exactly the rows of
`rlstore.reading.sequences`. An item is the dict of every step field of the schema
(`observation`, `action`, `reward`, `discount`, `is_first`, `is_last`, `is_terminal` and any step
metadata), each shaped [burn_in + length, ...], plus

    mask              float32 [burn_in + length]: 1 on real steps, 0 on zero padding
    is_demo           bool []: True for demonstrations (DQfD/R2D3 read it)
    core_state        optional: a tuple of float32 tensors (e.g. an LSTM's (h, c)), present only
                      when the layout names `core_state_shapes`: the state recorded with the
                      window's first step (step metadata `core_state/<i>`), else zeros

A writer that builds the same item from `burn_in + length` per-step cells (squeeze off) and one
that appends a whole window as one cell (squeezed, as the bulk loader does) produce identical
samples, so online and loaded items share one table.

A version stored as single frames (`stack` k in its schema) serves `transitions` whose stacked
fields are [k, *frame_shape] references to frames stored once, and `sequences` whose
observation is k x [span, *frame_shape] (slot j: the j-th frame of each step's stack),
referencing the same frames (`rlstore.replay.stacked`; `rlstore.replay.sample_dataset` turns
both into the readers' [..., *frame_shape, k] stacks).

Signatures come from the version's schema (`store.manifest(ref).schema`), so a table rejects
items of any other shape or dtype, and a learner can build its dataset from the table alone
(`reverb.TrajectoryDataset.from_table_signature`).

Options (per table): `max_size` with FIFO removal; a rate limiter, either MinSize(min_size) or,
with `samples_per_insert`, SampleToInsertRatio; a uniform or prioritized sampler. With
SampleToInsertRatio the items bulk-loaded from the store count as inserts: unless `error_buffer`
is given, the allowed range is sized so the load never blocks and the learner may then sample
each loaded item `samples_per_insert` times on average before it has to wait for new inserts.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import reverb
import tensorflow as tf

from rlstore.errors import RlstoreError
from rlstore.frames import observation_stack
from rlstore.manifest import Manifest
from rlstore.nest import unflatten
from rlstore.schema import FieldSpec, Schema

TRANSITIONS = "transitions"
SEQUENCES = "sequences"
TABLE_NAMES = (TRANSITIONS, SEQUENCES)
FRAMES_NAME = "stacked_frames"  # the signature name of a frame-stacked field: [k, *frame_shape]
FRAME_WINDOWS_NAME = "stacked_frame_windows"  # ... of a sequence's: k of [span, *frame_shape], one per slot


class ReplayError(RlstoreError, ValueError):
    """A replay table cannot be built, filled or restored as asked (a ValueError for bad options)."""


def over_budget(table: str, budget: int) -> ReplayError:
    """The error of a load that would pass what the table's rate limiter lets in unsampled."""
    return ReplayError(f"table {table!r}: its rate limiter blocks inserts after {int(budget)} items "
                       f"without sampling, and the version has more; raise its error buffer")


@dataclass(frozen=True)
class TableOptions:
    """Size, rate limiting and sampling of one table."""

    max_size: int = 1_000_000
    min_size: int = 1
    samples_per_insert: float | None = None
    error_buffer: float | None = None
    prioritized: bool = False
    priority_exponent: float = 0.6
    initial_priority: float = 1.0

    def __post_init__(self) -> None:
        if self.max_size < 1 or self.min_size < 1:
            raise ReplayError(f"max_size and min_size must be >= 1, got {self.max_size}, {self.min_size}")
        if self.samples_per_insert is not None and self.samples_per_insert <= 0:
            raise ReplayError(f"samples_per_insert must be > 0, got {self.samples_per_insert}")


@dataclass(frozen=True)
class Layout:
    """Which tables a server holds and how their rows are made from the version.

    `tables` names the tables (`transitions`, `sequences`); the other fields only matter for
    the tables named. `options` applies to every table unless `sequence_options` is given.
    """

    tables: tuple[str, ...] = (TRANSITIONS,)
    n_step: int = 1
    one_step: bool = False
    gamma: float = 0.99
    sequence_length: int = 40
    sequence_period: int = 20
    burn_in: int = 0
    is_demo: bool = False
    core_state_shapes: tuple[tuple[int, ...], ...] = ()
    options: TableOptions = field(default_factory=TableOptions)
    sequence_options: TableOptions | None = None

    def __post_init__(self) -> None:
        unknown = [name for name in self.tables if name not in TABLE_NAMES]
        if unknown or not self.tables or len(set(self.tables)) != len(self.tables):
            raise ReplayError(f"tables must be distinct names among {', '.join(TABLE_NAMES)}; got {list(self.tables)}")
        if self.n_step < 1 or self.sequence_length < 1 or self.sequence_period < 1 or self.burn_in < 0:
            raise ReplayError("need n_step >= 1, sequence_length >= 1, sequence_period >= 1 and burn_in >= 0")

    def table_options(self, table: str) -> TableOptions:
        return self.sequence_options if table == SEQUENCES and self.sequence_options else self.options

    @property
    def span(self) -> int:
        """Steps per sequence item: burn-in plus learning length."""
        return self.burn_in + self.sequence_length

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Layout":
        """The layout `to_json` described (JSON turns its tuples into lists)."""
        sequence_options = data.get("sequence_options")
        return cls(**{**data, "tables": tuple(data["tables"]),
                      "core_state_shapes": tuple(tuple(shape) for shape in data["core_state_shapes"]),
                      "options": TableOptions(**data["options"]),
                      "sequence_options": TableOptions(**sequence_options) if sequence_options else None})

    def digest(self) -> str:
        """A short, stable name for this layout (checkpoints of different layouts never mix)."""
        text = json.dumps(self.to_json(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


# ---- signatures ------------------------------------------------------------------------------

def _spec(spec: FieldSpec, leading: tuple[int, ...] = ()) -> tf.TensorSpec:
    dtype = tf.string if spec.dtype == "str" else tf.as_dtype(spec.dtype)
    return tf.TensorSpec(leading + tuple(spec.shape), dtype)


def _steps(schema: Schema, leading: tuple[int, ...] = ()) -> dict[str, Any]:
    return unflatten({key: _spec(spec, leading) for key, spec in schema.steps.items()})


def frames_spec(spec: FieldSpec) -> tf.TensorSpec:
    """The item spec of a stack of a frame-stacked field: [k, *frame_shape], frames oldest first
    (see `rlstore.replay.stacked`, which serves such versions)."""
    return tf.TensorSpec((spec.stack, *spec.shape), tf.as_dtype(spec.dtype), name=FRAMES_NAME)


def transition_signature(schema: Schema, one_step: bool = False) -> dict[str, Any]:
    """The item signature of the `transitions` table for a version with this schema."""
    steps = _steps(schema)
    if observation_stack(schema) > 1:
        steps["observation"] = frames_spec(schema.steps["observation"])
    reward, discount = schema.steps["reward"], schema.steps["discount"]
    # n-step sums are made in the reward's float dtype (see transforms.episode_transitions).
    dtype = tf.as_dtype(reward.dtype) if reward.dtype.startswith("float") else tf.float32
    signature = {"observation": steps["observation"], "action": steps["action"],
                 "reward": tf.TensorSpec(reward.shape, dtype), "discount": tf.TensorSpec(discount.shape, dtype),
                 "next_observation": steps["observation"]}
    return with_one_step(signature, signature) if one_step else signature


def with_one_step(rows: dict[str, Any], one_step_rows: dict[str, Any]) -> dict[str, Any]:
    """`rows` (n-step transitions) plus the 1-step target fields taken from `one_step_rows`,
    the n=1 transitions of the same steps in the same order."""
    return {**rows, "one_step_reward": one_step_rows["reward"], "one_step_discount": one_step_rows["discount"],
            "one_step_next_observation": one_step_rows["next_observation"]}


def with_core_state(rows: dict[str, Any], layout: Layout) -> dict[str, Any]:
    """Sequence rows with the layout's `core_state` column: the recurrent state recorded with each
    window's first step (step metadata `core_state/<i>`, which an actor's adder writes back), or
    zeros for steps that carry none (logged data, demonstrations): such items start from the
    zero state. Without `core_state_shapes` in the layout, recorded states are dropped."""
    recorded = rows.pop("core_state", None)
    if not layout.core_state_shapes:
        return rows
    size = len(rows["is_demo"])
    if recorded is None:
        rows["core_state"] = tuple(np.zeros((size, *shape), np.float32) for shape in layout.core_state_shapes)
    else:
        rows["core_state"] = tuple(np.asarray(recorded[str(part)][:, 0], np.float32)
                                   for part in range(len(layout.core_state_shapes)))
    return rows


def frame_windows_spec(spec: FieldSpec, span: int) -> tuple[tf.TensorSpec, ...]:
    """The item spec of a sequence's stacks of a frame-stacked field: for each of the k slots of a
    stack, that slot's frame at each of the `span` steps, k x [span, *frame_shape] (see
    `rlstore.replay.stacked`)."""
    return tuple(tf.TensorSpec((span, *spec.shape), tf.as_dtype(spec.dtype), name=FRAME_WINDOWS_NAME)
                 for _ in range(spec.stack))


def sequence_signature(schema: Schema, layout: Layout) -> dict[str, Any]:
    """The item signature of the `sequences` table for a version with this schema."""
    signature = _steps(schema, (layout.span,))
    if observation_stack(schema) > 1:
        signature["observation"] = frame_windows_spec(schema.steps["observation"], layout.span)
    signature.pop("core_state", None)  # recorded states become the item's one `core_state`, below
    signature["mask"] = tf.TensorSpec((layout.span,), tf.float32)
    signature["is_demo"] = tf.TensorSpec((), tf.bool)
    if layout.core_state_shapes:
        signature["core_state"] = tuple(tf.TensorSpec(shape, tf.float32) for shape in layout.core_state_shapes)
    return signature


def signature(schema: Schema, layout: Layout, table: str) -> dict[str, Any]:
    return transition_signature(schema, layout.one_step) if table == TRANSITIONS else sequence_signature(schema, layout)


# ---- tables ----------------------------------------------------------------------------------

def preload_bound(manifest: Manifest, layout: Layout, table: str) -> int:
    """How many items bulk-loading the version puts in `table` (exact for transitions, an
    upper bound for sequences: at most one window per `period` steps, plus one per episode)."""
    if table == TRANSITIONS:
        return manifest.num_steps - manifest.num_episodes
    return manifest.num_steps // layout.sequence_period + manifest.num_episodes


def rate_limiter(options: TableOptions, preload: int) -> reverb.rate_limiters.RateLimiter:
    """MinSize, or SampleToInsertRatio whose range lets `preload` items in before any sample."""
    spi = options.samples_per_insert
    if spi is None:
        return reverb.rate_limiters.MinSize(options.min_size)
    if options.error_buffer is not None:
        return reverb.rate_limiters.SampleToInsertRatio(spi, options.min_size, options.error_buffer)
    offset = spi * options.min_size
    slack = max(1.0, spi)
    return reverb.rate_limiters.SampleToInsertRatio(
        spi, options.min_size, (offset - slack, max(offset, spi * preload) + slack))


def make_table(name: str, options: TableOptions, item_signature: Any, preload: int) -> reverb.Table:
    """One Reverb table: FIFO removal at `max_size`, uniform or prioritized sampling."""
    sampler = (reverb.selectors.Prioritized(options.priority_exponent) if options.prioritized
               else reverb.selectors.Uniform())
    return reverb.Table(name, sampler=sampler, remover=reverb.selectors.Fifo(), max_size=options.max_size,
                        rate_limiter=rate_limiter(options, preload), signature=item_signature)


def online_table(name: str, manifest: Manifest, layout: Layout, table: str, options: TableOptions) -> reverb.Table:
    """An empty table `name` whose items have the signature of `table` in `layout`, for online
    actors to fill (e.g. R2D3's agent sequences next to the demonstrations loaded into `table`);
    give it to `ReplayServer(..., extra_tables=[...])`."""
    return make_table(name, options, signature(manifest.schema, layout, table), preload=0)


def make_tables(manifest: Manifest, layout: Layout) -> list[reverb.Table]:
    """The tables of `layout` for one version, signatures taken from its schema."""
    schema = manifest.schema
    return [make_table(name, layout.table_options(name), signature(schema, layout, name),
                       preload_bound(manifest, layout, name))
            for name in layout.tables]
