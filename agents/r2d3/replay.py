"""R2D3's two replays on one Reverb server, and the learner's batches drawn from both.

    sequences         the demonstrations: bulk-loaded from a store version (`is_demo` True, zero
                      `core_state`), prioritized, never grows; its rate limiter is MinSize(all of
                      them), so the learner's first demonstration batch waits until every
                      demonstration window is in (with MinSize(1) the first batches would
                      replay whichever episodes the loader happened to write first); the same table `rlstore serve DEMOS
                      --tables sequences --demo --core-state-shapes 64,64 --prioritized` serves
    agent_sequences   the actors' sequences, with the LSTM state each starts from; prioritized,
                      FIFO at `replay_size`, rate-limited to `samples_per_insert`

On frame-stacked envs (`atari:` games) both tables hold frames once and sequences referencing
them (rlstore.replay.stacked): the demonstrations as any stacked version is served, the actors'
episodes through the same writer (`agent_inserter`); the learner samples [batch, time, 84, 84, k]
stacks from either.

Both tables hold `rlstore.replay.tables` sequence items of the same layout (`burn_in +
sequence_length` steps every `period`), so a batch can mix them. Every batch takes the share
`demo_ratio` of its rows from the demonstrations, exactly (rlstore.reading.mix: a smooth
round robin over rows, so a share below one row per batch still comes out right over a
cycle). Rows carry importance weights (N·P)^-β normalised by the batch's largest, and the
learner writes each row's new priority back to the table it came from.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import reverb
import tensorflow as tf

from rlstore.agents.online.context import actor_schema as agent_schema
from rlstore.agents.prioritized import PriorityWriter, importance_weights, sample_info, without_text
from rlstore.agents.r2d3.config import R2D3Config
from rlstore.agents.specs import DataSpecs
from rlstore.reading import mix
from rlstore.reading.mixing import SOURCE_FIELD
from rlstore.reading.transforms import episode_sequences
from rlstore.replay import SEQUENCES, Layout, TableOptions, sample_dataset
from rlstore.replay.loading import episode_steps
from rlstore.replay.tables import make_table, sequence_signature
from rlstore.schema import Schema
from rlstore.store import Store
from rlstore.writeback.replay import ReplayInserter

DEMO_TABLE = SEQUENCES
AGENT_TABLE = "agent_sequences"
DEMO_SOURCE, AGENT_SOURCE = 0, 1
_FLOAT_FIELDS = ("reward", "discount")


def layout(config: R2D3Config, is_demo: bool = True) -> Layout:
    """The sequence layout of both tables (the demonstrations' `is_demo` flag as asked)."""
    options = TableOptions(max_size=1_000_000, prioritized=True, priority_exponent=config.priority_exponent)
    return Layout(tables=(SEQUENCES,), gamma=config.gamma, sequence_length=config.sequence_length,
                  sequence_period=config.period, burn_in=config.burn_in, is_demo=is_demo,
                  core_state_shapes=config.core_state_shapes, options=options)


def agent_options(config: R2D3Config) -> TableOptions:
    """FIFO at `replay_size`; the learner may run `samples_per_insert` samples per actor insert,
    give or take two batches' worth, so neither side waits on the other at every step."""
    return TableOptions(max_size=config.replay_size, min_size=config.min_replay_size,
                        samples_per_insert=config.samples_per_insert,
                        error_buffer=2.0 * config.samples_per_insert * config.batch_size,
                        prioritized=True, priority_exponent=config.priority_exponent)


def tables(config: R2D3Config, specs: DataSpecs, demo_schema: Schema | None,
           demo_items: int = 1, frame_stack: int = 1) -> list[reverb.Table]:
    """The agent table and, with demonstrations (their version's schema), the demonstration table,
    which lets the learner sample once it holds `demo_items` windows (`demo_window_count`).
    `frame_stack` k > 1 (`atari:` envs): the actors' observations are frames stored once, which
    their sequences reference (rlstore.replay.stacked), as a stacked demonstration version's do."""
    sequences = layout(config)
    agent = make_table(AGENT_TABLE, agent_options(config),
                       sequence_signature(agent_schema(specs, frame_stack), sequences), preload=0)
    if demo_schema is None:
        return [agent]
    options = dataclasses.replace(sequences.options, min_size=max(demo_items, 1))
    demos = make_table(DEMO_TABLE, options, sequence_signature(demo_schema, sequences), preload=0)
    return [demos, agent]


def agent_inserter(address: str, config: R2D3Config, frame_stack: int = 1) -> ReplayInserter:
    """Where the actors' adders put their sequences: the agent table, `is_demo` False, each with
    the LSTM state recorded with its first step. `frame_stack` k > 1 (`atari:` envs): each
    episode's frames are appended once and the sequences reference them (rlstore.replay.stacked)."""
    return ReplayInserter(address, layout(config, is_demo=False), into={SEQUENCES: AGENT_TABLE},
                          frame_stack=frame_stack)


def demo_window_count(store: Store, ref: str, config: R2D3Config) -> int:
    """How many sequence windows bulk-loading version `ref` puts into the demonstration table:
    the loader's windowing (`episode_sequences`) applied to the episodes' first/last flags alone.
    Why not count the reader's rows: on a frame-stacked version (Atari) they hold every window's
    stacks, [rows, 40, 84, 84, 4] per batch (GBs), only to be counted."""
    flags = [{key: steps[key] for key in ("is_first", "is_last")} for steps in episode_steps(store, ref)]
    if not flags:
        return 0
    joined = {key: np.concatenate([episode[key] for episode in flags]) for key in ("is_first", "is_last")}
    windows = episode_sequences(joined, config.sequence_length, config.period, config.burn_in)
    return int(tf.shape(windows["mask"])[0])


def _rows(sample: reverb.ReplaySample) -> dict[str, Any]:
    """A batch of samples as rows: the item (rewards and discounts as float32, without text
    observation keys such as MiniGrid's mission, which demonstrations keep and actors drop, so
    both tables' rows concatenate) plus what priorities and importance weights need."""
    rows = dict(sample.data)
    for name in _FLOAT_FIELDS:
        rows[name] = tf.cast(rows[name], tf.float32)
    rows["observation"] = without_text(rows["observation"])
    return {**rows, **sample_info(sample)}


def replay_batches(address: str, config: R2D3Config, with_demos: bool, seed: int,
                   timeout_ms: int = -1) -> tf.data.Dataset:
    """Endless mixed batches (see the module docstring); each row has `source` (DEMO_SOURCE or
    AGENT_SOURCE). With `timeout_ms` >= 0 the dataset ends when the agent table's rate limiter
    holds samples back that long."""
    def read(table: str) -> tf.data.Dataset:
        return sample_dataset(address, table, config.batch_size, rate_limiter_timeout_ms=timeout_ms).map(_rows)

    agent = read(AGENT_TABLE)
    if with_demos and config.demo_ratio > 0:
        sources = {read(DEMO_TABLE): config.demo_ratio, agent: 1.0 - config.demo_ratio}
        batches = mix(sources, seed=seed, batch_size=config.batch_size).dataset
    else:
        batches = _from(agent, AGENT_SOURCE)
    return _weighted(batches, config)


def demo_batches(address: str, config: R2D3Config) -> tf.data.Dataset:
    """Endless batches of demonstration sequences alone (pre-training), rows as `replay_batches`'."""
    read = sample_dataset(address, DEMO_TABLE, config.batch_size).map(_rows)
    return _weighted(_from(read, DEMO_SOURCE), config)


def _from(batches: tf.data.Dataset, source: int) -> tf.data.Dataset:
    return batches.map(lambda rows: {**rows, SOURCE_FIELD: tf.fill(tf.shape(rows["key"]), source)})


def _weighted(batches: tf.data.Dataset, config: R2D3Config) -> tf.data.Dataset:
    return batches.map(lambda rows: {**rows, "weight": importance_weights(
        rows["probability"], rows["table_size"], config.importance_exponent)}).prefetch(config.prefetch)


def priority_writer(address: str, with_demos: bool) -> PriorityWriter:
    """New sequence priorities back to the table each row came from (in-graph, for R2D3Learner)."""
    return PriorityWriter(address, {DEMO_SOURCE: DEMO_TABLE, AGENT_SOURCE: AGENT_TABLE} if with_demos
                          else {AGENT_SOURCE: AGENT_TABLE})
