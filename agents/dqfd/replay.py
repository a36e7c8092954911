"""DQfD's replay: two prioritized Reverb tables, and batches that mix them at a set ratio.

    demonstrations  bulk-loaded from the demonstration version, sized to hold all of it and
                    never written again, so nothing is ever evicted; MinSize(all of it), so the
                    learner samples only once the load is complete
    transitions     the agent's own experience, inserted by the actors; FIFO beyond
                    `replay_size`; a SampleToInsertRatio rate limiter (`samples_per_insert`,
                    sampling starts at `min_replay_size`) holds acting and learning together

Why two tables rather than one with a priority bonus alone: Reverb removes items per table, so
in one FIFO table the demonstrations would be evicted like any old transition; two tables keep
them for the whole run and make the demo share of every batch exact and observable
(`demo_ratio`: round(batch_size · demo_ratio) rows from demonstrations, the rest from the
agent). `demo_ratio` 0 leaves out the demonstration table: plain prioritized n-step double DQN.

Both tables hold the same items: n-step `transitions` rows with the 1-step target of the same
step (`Layout(one_step=True)`), made by the same functions for bulk-loaded demonstrations
(rlstore.replay.loading) and for the actors' episodes (rlstore.writeback.replay.layout_rows).
The agent table's signature comes from the schema of the episodes actors record; the
demonstration table's from the demonstration version's own schema, so it can hold what actors do
not record (MiniGrid's mission text). Sampled rows drop text keys and take float32 rewards and
discounts, so the two tables' rows concatenate (the run checked before that the demonstrations'
observations and actions are the environment's).

A sampled batch carries, per row, its table's `probability` and `table_size` and its `key`:
the learner turns them into importance weights (per table, with the annealed β) and sends the
new priorities back to the right table.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import reverb
import tensorflow as tf

from rlstore.agents.dqfd.config import DQfDConfig
from rlstore.agents.online.context import actor_schema
from rlstore.agents.prioritized import SAMPLE_TIMEOUT_MS, sample_info, without_text
from rlstore.agents.specs import DataSpecs
from rlstore.replay import TRANSITIONS, Layout, TableOptions, sample_dataset
from rlstore.replay.tables import make_table, transition_signature
from rlstore.schema import Schema

DEMO_TABLE = "demonstrations"
REPLAY_TABLE = TRANSITIONS  # the actors' ReplayInserter fills the table named after the row kind


@dataclasses.dataclass(frozen=True)
class BatchSplit:
    """How many rows of each batch come from each table (demonstrations first)."""

    demo_rows: int
    replay_rows: int

    @classmethod
    def of(cls, config: DQfDConfig) -> "BatchSplit":
        demo = int(round(config.batch_size * config.demo_ratio))
        if config.demo_ratio > 0 and not 0 < demo < config.batch_size:
            raise ValueError(f"demo_ratio {config.demo_ratio} of batch_size {config.batch_size} leaves one source "
                             "without rows; choose a ratio or batch size that gives each at least one")
        return cls(demo, config.batch_size - demo)


def layout(config: DQfDConfig) -> Layout:
    """The agent's replay table: prioritized n-step transitions with 1-step targets, rate limited."""
    options = TableOptions(max_size=config.replay_size, min_size=config.min_replay_size,
                           samples_per_insert=config.samples_per_insert,
                           # actors may run up to min_replay_size transitions ahead of (or behind) the ratio
                           error_buffer=config.samples_per_insert * config.min_replay_size,
                           prioritized=True, priority_exponent=config.priority_exponent, initial_priority=1.0)
    return Layout(tables=(TRANSITIONS,), n_step=config.n_step, gamma=config.gamma, one_step=True, options=options)


def demo_layout(config: DQfDConfig, num_items: int) -> Layout:
    """The demonstrations' table: all `num_items` rows, never evicted, the ε_d bonus from the start."""
    options = TableOptions(max_size=max(num_items, 1), min_size=max(num_items, 1), prioritized=True,
                           priority_exponent=config.priority_exponent,
                           initial_priority=1.0 + config.demo_priority_bonus)
    return dataclasses.replace(layout(config), options=options)


def make_tables(config: DQfDConfig, specs: DataSpecs, demo_schema: Schema | None, num_demo_items: int,
                frame_stack: int = 1) -> list[reverb.Table]:
    """The agent table and, with `demo_schema` (the demonstration version's), the demonstration
    table. `frame_stack` k > 1: observations are frames stored once and items reference their
    stacks (rlstore.replay.stacked), for demonstrations and the actors' episodes alike."""
    signature = transition_signature(actor_schema(specs, frame_stack), one_step=True)
    tables = [make_table(REPLAY_TABLE, layout(config).options, signature, preload=0)]
    if demo_schema is not None:
        tables.append(make_table(DEMO_TABLE, demo_layout(config, num_demo_items).options,
                                 transition_signature(demo_schema, one_step=True), preload=num_demo_items))
    return tables


def sampled_batches(address: str, split: BatchSplit) -> tf.data.Dataset:
    """Endless batches of `split.demo_rows` demonstration rows then `split.replay_rows` agent rows.

    Each element: rlstore.agents.dqfd.data.ROW_FIELDS except `weight` (the learner computes it), plus
    `key`, `probability` and `table_size` per row. A table that blocks for SAMPLE_TIMEOUT_MS ends
    the dataset.
    """
    parts = [(table, rows) for table, rows in ((DEMO_TABLE, split.demo_rows), (REPLAY_TABLE, split.replay_rows))
             if rows]
    datasets = tuple(sample_dataset(address, table, rows, rate_limiter_timeout_ms=SAMPLE_TIMEOUT_MS)
                     for table, rows in parts)

    def combine(*samples: reverb.ReplaySample) -> dict[str, Any]:
        rows = [_rows(sample, table == DEMO_TABLE) for sample, (table, _) in zip(samples, parts)]
        return tf.nest.map_structure(lambda *columns: tf.concat(columns, axis=0), *rows)

    return tf.data.Dataset.zip(datasets).map(combine).prefetch(2)


def _rows(sample: reverb.ReplaySample, is_demo: bool) -> dict[str, Any]:
    """A sampled item batch as DQfD rows: its 1-step target as `reward`..., n-step as `n_step_*`."""
    item = sample.data
    size = tf.shape(item["action"])[0]
    return {"observation": without_text(item["observation"]), "action": item["action"],
            "reward": _float32(item["one_step_reward"]), "discount": _float32(item["one_step_discount"]),
            "next_observation": without_text(item["one_step_next_observation"]),
            "n_step_reward": _float32(item["reward"]), "n_step_discount": _float32(item["discount"]),
            "n_step_next_observation": without_text(item["next_observation"]),
            "is_demo": tf.fill([size], is_demo), **sample_info(sample)}


def _float32(column: tf.Tensor) -> tf.Tensor:
    return tf.cast(column, tf.float32)
