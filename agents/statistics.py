"""Per-feature statistics of a dataset version, gathered in one pass before a run's first update.

Observation features can differ in scale by orders of magnitude (CartPole's pole angle varies
by about 0.02, its cart position by about 1), and an MLP fed raw values mostly ignores the small
ones. So non-image observations are standardised with the dataset's mean and std, held inside
the network (restored from checkpoints, carried into exports). The same pass finds the largest
discrete action, which sizes the policy head when no environment says how many actions exist.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from rlstore.agents.specs import is_image
from rlstore.nest import flatten
from rlstore.stats import Moments
from rlstore.store import Store

_BATCH = 8192


@dataclasses.dataclass(frozen=True)
class DataStatistics:
    """Mean and std per observation key (flat keys as in DataSpecs; images left out), and the largest action."""

    observation_mean: dict[str, np.ndarray]
    observation_std: dict[str, np.ndarray]
    max_action: int | None
    num_steps: int


def compute_statistics(store: Store, ref: str) -> DataStatistics:
    """One pass over every step of the version (last steps included: their observations are real),
    each batch's moments merged into the running ones (`rlstore.stats.Moments`, Chan's update)."""
    from rlstore import reading

    schema = store.manifest(ref).schema
    keys = {key: key.partition("/")[2] for key, field in schema.steps.items()
            if (key == "observation" or key.startswith("observation/")) and not is_image(field) and field.dtype != "str"}
    discrete = "action" in schema.steps and np.issubdtype(np.dtype(schema.steps["action"].dtype), np.integer)
    moments: dict[str, Moments] = {}
    count, max_action = 0, None
    for batch in reading.steps(store, ref, batch_size=_BATCH, shuffle=False, repeat=False).as_numpy_iterator():
        flat = flatten({"observation": batch["observation"]}) if isinstance(batch["observation"], dict) else {"observation": batch["observation"]}
        for key, name in keys.items():
            part = Moments.of(flat[key])
            moments[name] = moments[name].merge(part) if name in moments else part
        count += len(batch["is_first"])
        if discrete:
            top = int(batch["action"].max())
            max_action = top if max_action is None else max(max_action, top)
    return DataStatistics({name: m.mean for name, m in moments.items()}, {name: m.std for name, m in moments.items()},
                          max_action, count)
