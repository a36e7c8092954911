"""Agent name → config class and builder: how `rlstore train/eval/export` find an agent.

A new agent (DQfD, R2D3, ...) adds one `AgentEntry` here and implements `AgentBuilder`; the
training loop, run directory, checkpoints, logs, evaluation, export and CLI then work for it
unchanged. Entries name modules as strings so listing agents (and building the CLI parser)
imports neither the builders nor TensorFlow.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Mapping, Protocol

from rlstore.agents.errors import AgentError


class Learner(Protocol):
    """What the training loop drives. `steps` is the update counter saved in checkpoints."""

    steps: Any  # tf.Variable(int64)

    def run(self, num_updates: int) -> dict[str, float]:
        """Performs `num_updates` updates; returns their mean metrics (at least "loss")."""

    def checkpoint_objects(self) -> Mapping[str, Any]:
        """Everything to checkpoint; must include "network" (what make_networks built) and "steps"."""


class AgentBuilder(Protocol):
    """Wires an agent's pieces from a dataset's specs and a config."""

    def make_networks(self, specs: Any, config: Any, statistics: Any = None) -> Any:
        """The agent's networks with their variables created (so a checkpoint can restore into them).

        `statistics` (rlstore.agents.statistics.DataStatistics) is given when a run starts from scratch,
        None when its networks are about to be restored from a checkpoint."""

    def make_dataset(self, store: Any, ref: str, specs: Any, config: Any, seed: int) -> Any:
        """The learner's input: an endless, shuffled tf.data.Dataset of batches from one store version."""

    def make_learner(self, networks: Any, dataset: Any, specs: Any, config: Any) -> Learner:
        """The learner over `dataset`."""

    def make_policy(self, networks: Any, specs: Any, config: Any) -> Any:
        """A TF module mapping batched observations to batched actions (evaluated and exported)."""

    def make_actor(self, policy: Any, specs: Any, env: Any) -> Any:
        """A dm_env policy (`timestep -> action`) for `env` built from `policy`."""


@dataclasses.dataclass(frozen=True)
class AgentEntry:
    """Where an agent's TF-free config class and its builder live ("module:attribute")."""

    config: str
    builder: str
    description: str
    online: str | None = None  # "module:attribute" of its online factory (rlstore.agents.online), if it has one

    def config_class(self) -> type:
        return _load(self.config)

    def make_config(self, overrides: Mapping[str, Any]) -> Any:
        """The agent's config with `overrides`; a value its checks refuse is an AgentError (one CLI line)."""
        try:
            return self.config_class()(**overrides)
        except ValueError as error:
            raise AgentError(str(error)) from error

    def make_builder(self) -> AgentBuilder:
        return _load(self.builder)()

    def online_factory(self) -> Any:
        """The agent's `factory(context) -> OnlineAgent` (see rlstore.agents.online); AgentError if it has none."""
        if self.online is None:
            raise AgentError("this agent has no online mode (`rlstore run`); online agents: "
                             + ", ".join(sorted(name for name, entry in AGENTS.items() if entry.online)))
        return _load(self.online)


AGENTS: dict[str, AgentEntry] = {
    "bc": AgentEntry("rlstore.agents.bc.config:BCConfig", "rlstore.agents.bc.builder:BCBuilder",
                     "behaviour cloning: supervised learning of the logged actions"),
    "dqfd": AgentEntry("rlstore.agents.dqfd.config:DQfDConfig", "rlstore.agents.dqfd.builder:DQfDBuilder",
                       "DQfD (Hester et al. 2018): n-step double-Q TD + large-margin loss on demonstrations",
                       online="rlstore.agents.dqfd.online:DQfDOnline"),
    "r2d3": AgentEntry("rlstore.agents.r2d3.config:R2D3Config", "rlstore.agents.r2d3.builder:R2D3Builder",
                       "R2D3 (Paine et al. 2019): recurrent (LSTM) n-step double-Q on sequences with demonstrations",
                       online="rlstore.agents.r2d3.online:R2D3Online"),
}


def get(name: str) -> AgentEntry:
    if name not in AGENTS:
        raise AgentError(f"unknown agent {name!r}; agents: {', '.join(sorted(AGENTS))}")
    return AGENTS[name]


def _load(path: str) -> Any:
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)
