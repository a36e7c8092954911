"""Bulk loading of a store version into Reverb tables.

Why it is fast: the rows are made by the tf.data readers (`rlstore.reading.transitions` /
`sequences`: whole episodes decoded at once, n-step sums and windows vectorised), so Python
never touches a step. What is left per item is one `Append` and one `CreateItem` on Reverb's
C++ TrajectoryWriter (`rlstore.replay.writing.RowWriter`, the one module that writes to Reverb).
Three writers insert thirds of each batch in parallel threads (the C++ calls release the GIL, so
one writer's wait for the server's confirmations overlaps the others' work) while tf.data reads
the next batches. Items are validated once, by checking the reader's element spec against the
table signature, instead of per item.
"""
from __future__ import annotations

import math
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Mapping

import numpy as np
import tree

import reverb
import tensorflow as tf

from rlstore.frames import observation_stack
from rlstore.names import DatasetRef
from rlstore.replay.tables import (SEQUENCES, TRANSITIONS, Layout, ReplayError, over_budget, preload_bound,
                                   signature, with_core_state, with_one_step)
from rlstore.replay.stacked import load_stacked
from rlstore.replay.writing import RowWriter
from rlstore.store import Store

READ_BATCH = 4096  # rows per reader batch, split over the writers
WRITERS = 3  # parallel writer streams, used when the load evicts nothing (else 1: strict FIFO order)
QUEUED_BATCHES = 2  # batches read ahead of the writers


def _rows(store: Store, ref: DatasetRef, layout: Layout, table: str) -> tf.data.Dataset:
    from rlstore.reading import sequences, transitions

    common = dict(batch_size=READ_BATCH, shuffle=False, repeat=False)
    if table == TRANSITIONS:
        rows = transitions(store, ref, n_step=layout.n_step, gamma=layout.gamma, **common)
        if layout.one_step:  # unshuffled readers of one version yield the same steps in the same order
            one = transitions(store, ref, n_step=1, gamma=layout.gamma, **common)
            rows = tf.data.Dataset.zip((rows, one)).map(_join_one_step)
        return rows
    return sequences(store, ref, length=layout.sequence_length, period=layout.sequence_period,
                     burn_in=layout.burn_in, is_demo=layout.is_demo, **common)


def episode_steps(store: Store, ref: str | DatasetRef) -> Iterable[dict[str, Any]]:
    """The version's episodes' steps (single frames), in the version's order, as numpy arrays."""
    from rlstore.reading import episodes

    for episode in episodes(store, ref, shuffle=False).as_numpy_iterator():
        yield episode["steps"]


def _join_one_step(rows: dict[str, Any], one: dict[str, Any]) -> dict[str, Any]:
    for a, b in zip(tf.nest.flatten(rows["observation"]), tf.nest.flatten(one["observation"])):
        tf.debugging.assert_equal(a, b, message="1-step and n-step rows are misaligned")
    return with_one_step(rows, one)


def check_fits(rows: Any, item_signature: Any, what: str) -> None:
    """Rows must be exactly the table's items, field by field, or the server would reject them:
    checked once per reader or batch, not per item. `rows` holds anything with a `dtype` and a
    batch-major `shape` (tensor specs, arrays); `what` opens the error message."""
    try:
        tree.assert_same_structure(rows, item_signature)
    except (ValueError, TypeError) as error:
        raise ReplayError(f"{what}: {error}") from None
    for (path, want), have in zip(tree.flatten_with_path(item_signature), tree.flatten(rows)):
        have_type = (tf.as_dtype(have.dtype).name, list(have.shape[1:]))
        want_type = (want.dtype.name, want.shape.as_list())
        if have_type != want_type:
            raise ReplayError(f"{what}: field {'/'.join(map(str, path))} is {have_type[0]}{have_type[1]} in the "
                              f"rows, {want_type[0]}{want_type[1]} in the table")


def _insert_budget(info: reverb.reverb_types.TableInfo) -> int:
    """How many more items the table's rate limiter lets in before a sample must happen."""
    limiter = info.rate_limiter_info
    error = limiter.insert_stats.completed * limiter.samples_per_insert - limiter.sample_stats.completed
    return math.floor((limiter.max_diff - error) / limiter.samples_per_insert)


def _insert(address: str, table: str, priority: float, batches: Iterable[dict[str, Any]], budget: int,
            streams: int, kind: str) -> int:
    """Inserts every row of `batches`, each batch split over `streams` writers. Each writer has
    its own thread and works through its parts in order, up to `QUEUED_BATCHES` batches ahead of
    the reader, so neither waits for the other nor for the slowest writer."""
    writers = [RowWriter(address, kind) for _ in range(streams)]
    lanes = [ThreadPoolExecutor(1, thread_name_prefix="replay-load") for _ in writers]
    inserted, queued = 0, deque()
    try:
        for batch in batches:
            columns = [list(column) for column in tree.flatten(batch)]
            count = len(columns[0])
            if inserted + count > budget:
                raise over_budget(table, budget)
            while len(queued) >= QUEUED_BATCHES * streams:
                queued.popleft().result()
            bounds = np.linspace(0, count, streams + 1).astype(int)
            for lane, (start, stop) in enumerate(zip(bounds, bounds[1:])):
                queued.append(lanes[lane].submit(writers[lane].insert, table, priority,
                                                 [column[start:stop] for column in columns]))
            inserted += count
        queued.extend(lane.submit(writer.flush) for lane, writer in zip(lanes, writers))
        for future in queued:
            future.result()
    finally:
        for lane in lanes:
            lane.shutdown(wait=True, cancel_futures=True)  # no writer is closed while in use
        for writer in writers:
            writer.close()
    return inserted


def load_version(address: str, store: Store, ref: str | DatasetRef, layout: Layout,
                 into: Mapping[str, str] | None = None) -> dict[str, int]:
    """Fills every table of `layout` on the server at `address` from version `ref`.

    `into` names the server's table each kind of rows goes into (e.g. {"transitions":
    "demonstrations"}, to keep demonstrations in a table of their own); by default a kind's
    table has the kind's name. When the version fits in a table, rows go in through parallel
    writers; when it does not, through one writer in the version's order (segments, shards,
    episodes), so that FIFO removal leaves exactly the newest `max_size` items. Returns the
    number of items inserted per table (by the server's table name).
    """
    ref = store.resolve(ref)
    manifest = store.manifest(ref)
    schema = manifest.schema
    client = reverb.Client(address)
    counts = {}
    frame_stack = observation_stack(schema)
    for kind in layout.tables:
        table = (into or {}).get(kind, kind)
        item_signature = signature(schema, layout, kind)  # refuses what cannot be served
        if frame_stack > 1:  # frames once, items referencing them (rlstore.replay.stacked)
            counts[table] = load_stacked(address, table, layout, frame_stack, layout.table_options(kind).initial_priority,
                                         episode_steps(store, ref), _insert_budget(client.server_info()[table]),
                                         kind=kind)
            continue
        rows = _rows(store, ref, layout, kind)
        loaded = {key: value for key, value in item_signature.items() if key != "core_state"}  # added below
        read = {key: value for key, value in rows.element_spec.items() if key != "core_state"}
        check_fits(read, loaded, f"the {table} reader's rows do not match the table signature")
        batches = rows.as_numpy_iterator()
        if kind == SEQUENCES:
            batches = (with_core_state(batch, layout) for batch in batches)
        info = client.server_info()[table]
        streams = WRITERS if preload_bound(manifest, layout, kind) <= info.max_size - info.current_size else 1
        counts[table] = _insert(address, table, layout.table_options(kind).initial_priority, batches,
                                _insert_budget(info), streams, kind)
    return counts
