"""How a source reader tells the quality report about an episode: notes under a reserved key.

Some problems are visible only to the reader, from data that does not survive into RLDS: a
D4RL file whose last episode has neither a terminal nor a timeout (kept, but truncated), or a
`next_observations` row that disagrees with the following step's observation (D4RL's
out-of-sync timeouts). The reader attaches a note to the episode it yields:

    from rlstore.pipelines.notes import TRUNCATED, add_note, observation_jumps
    add_note(episode, TRUNCATED, "the file ends inside this episode")
    for t in observation_jumps(observations, next_observations):
        add_note(episode, OBSERVATION_JUMP, "next_observations[t] != observations[t+1]", step=t)

Notes live in the episode dict under NOTES_KEY, a list of `{"kind", "message", "step"}`
dicts. The ingest pipeline pops them off before the schema check (they are never stored as
episode metadata) and counts them, per kind, as warnings in the version's quality report,
with the file and episode of the first few. Any kind is accepted; TRUNCATED and
OBSERVATION_JUMP get their own wording in the report. This module imports only numpy so a
reader can use it without pulling in Beam.
"""
from __future__ import annotations

from typing import Any, MutableMapping

import numpy as np

NOTES_KEY = "_rlstore_notes"
TRUNCATED = "truncated_final_episode"
OBSERVATION_JUMP = "observation_jump"
REPAIRED_IS_LAST = "repaired_is_last"

Note = dict[str, Any]


def add_note(episode: MutableMapping[str, Any], kind: str, message: str, step: int | None = None) -> None:
    """Attaches a warning to `episode` for the quality report (see the module docstring)."""
    episode.setdefault(NOTES_KEY, []).append({"kind": str(kind), "message": str(message),
                                              "step": None if step is None else int(step)})


def pop_notes(episode: MutableMapping[str, Any]) -> list[Note]:
    """Removes and returns an episode's notes, leaving only RLDS data for the schema."""
    return list(episode.pop(NOTES_KEY, None) or [])


def observation_jumps(observations: np.ndarray, next_observations: np.ndarray,
                      rtol: float = 1e-5, atol: float = 1e-6) -> np.ndarray:
    """Steps t of one episode where next_observations[t] is not observations[t+1] (within tolerance).

    Both arrays hold the episode's rows only; the last row of `next_observations` has no
    following step and is not compared.
    """
    following, claimed = np.asarray(observations)[1:], np.asarray(next_observations)[:-1]
    if following.size == 0:
        return np.zeros(0, dtype=np.int64)
    close = np.isclose(claimed, following, rtol=rtol, atol=atol, equal_nan=True)
    return np.flatnonzero(~close.reshape(len(close), -1).all(axis=1))
