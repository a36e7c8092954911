"""An actor's finished episodes into the agent replay, as R2D2 sequences WITH their recurrent state.

The windows are exactly the store's and the loader's (`rlstore.writeback.replay.layout_rows`,
i.e. `rlstore.reading.transforms.episode_sequences`: starts every `period` steps from the
episode's first step, zero padding with `mask`, never across episodes), so agent and
demonstration items share one layout. What the steps alone cannot give is `core_state`: the
LSTM state the actor chose the window's first action from (R2D2's "stored state"). The actor
records one state per step of the episode (the state before each step, and after the last
action for a window that starts on the final step); here row i, which starts at step
i·period, gets state number i·period.

This is the online actor's `make_inserter` (see rlstore.agents.online): it replaces the layout-only
ReplayInserter, which would store zeros. New items get priority `initial_priority` (1.0, above
typical |δ|, so fresh sequences are sampled soon, as Ape-X gives new items the maximum priority).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import tree

import reverb

from rlstore.agents.errors import AgentError
from rlstore.agents.r2d3 import replay
from rlstore.agents.r2d3.config import R2D3Config
from rlstore.replay import SEQUENCES, Layout
from rlstore.writeback.replay import layout_rows

StepStates = Sequence[tuple[np.ndarray, ...]]  # one LSTM state per step of an episode, each [1, units]


def episode_items(steps: Mapping[str, Any], states: StepStates, layout: Layout, signature: Any) -> dict[str, Any]:
    """One episode's windows as items of a table with `signature`, each with the state at its first step."""
    rows = layout_rows(steps, layout, SEQUENCES)
    length = len(steps["is_first"])
    if len(states) != length:
        raise AgentError(f"the actor recorded {len(states)} recurrent states for an episode of {length} steps")
    starts = np.arange(len(rows["is_demo"])) * layout.sequence_period
    rows["core_state"] = tuple(np.concatenate([states[start][part] for start in starts])
                               for part in range(len(layout.core_state_shapes)))
    return tree.map_structure(lambda column, spec: column.astype(spec.dtype.as_numpy_dtype), rows, signature)


class SequenceInserter:
    """Inserts every window of each finished episode into `table`; `episode_states()` returns the
    states the actor recorded for the episode just finished (one per step)."""

    def __init__(self, address: str, config: R2D3Config, episode_states: Callable[[], StepStates],
                 table: str = replay.AGENT_TABLE, initial_priority: float = 1.0):
        self._layout = replay.layout(config, is_demo=False)
        self._client = reverb.Client(address)
        tables = self._client.server_info(timeout=30)
        if table not in tables:
            raise AgentError(f"the Reverb server at {address} has no table {table!r} (it has: {', '.join(tables)})")
        self._signature = tables[table].signature
        self._table = table
        self._priority = initial_priority
        self._episode_states = episode_states
        self._writer = self._client.trajectory_writer(num_keep_alive_refs=1)
        self.inserted = 0

    def add(self, episodes: Sequence[Mapping[str, Any]]) -> None:
        """Inserts the windows of these finished episodes (their step dicts), in order, and waits for
        the server to confirm them (the table's rate limiter may hold them back: acting waits too)."""
        for steps in episodes:
            rows = episode_items(steps, self._episode_states(), self._layout, self._signature)
            for index in range(len(rows["is_demo"])):
                self._writer.append(tree.map_structure(lambda column: column[index], rows))
                self._writer.create_item(self._table, self._priority,
                                         tree.map_structure(lambda column: column[-1], self._writer.history))
                self.inserted += 1
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
