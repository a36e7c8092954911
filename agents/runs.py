"""A run directory (what `train --out` writes and `eval`/`export --checkpoint` read) and loading from it.

    DIR/run.json        the run manifest (rlstore.agents.run_manifest): dataset version, config, seed, code
    DIR/checkpoints/    tf.train.Checkpoint files, the last few kept
    DIR/logs/           train.csv, eval.csv and TensorBoard event files

Everything needed to rebuild the networks is in the directory, so evaluating or exporting a run
needs neither the store nor the dataset.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import tensorflow as tf

from rlstore.agents import registry, run_manifest
from rlstore.agents.checkpointing import Checkpointer
from rlstore.agents.config_args import config_from_json
from rlstore.agents.errors import AgentError
from rlstore.agents.specs import DataSpecs


@dataclasses.dataclass(frozen=True)
class RunDirectory:
    path: Path

    @classmethod
    def at(cls, path: str | Path) -> "RunDirectory":
        return cls(Path(path).expanduser().resolve())

    @property
    def manifest_path(self) -> Path:
        return self.path / "run.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    def exists(self) -> bool:
        return self.manifest_path.is_file()


@dataclasses.dataclass
class TrainedAgent:
    """A run's networks restored from its latest checkpoint, with the policy built on them."""

    manifest: dict[str, Any]
    builder: registry.AgentBuilder
    config: Any
    specs: DataSpecs
    policy: Any
    step: int

    def make_actor(self, env: Any) -> Any:
        return self.builder.make_actor(self.policy, self.specs, env)


def load_trained(directory: str | Path) -> TrainedAgent:
    """Restores the latest checkpoint of a run directory (weights only; the optimizer is not needed)."""
    run = RunDirectory.at(directory)
    if not run.exists():
        raise AgentError(f"{run.path} is not a run directory (no run.json); train one with `rlstore train`")
    manifest = run_manifest.read(run.manifest_path)
    entry = registry.get(manifest["agent"])
    config = config_from_json(entry.config_class(), manifest["config"])
    specs = DataSpecs.from_json(manifest["specs"])
    builder = entry.make_builder()
    networks = builder.make_networks(specs, config)
    steps = tf.Variable(0, dtype=tf.int64, trainable=False)
    if not Checkpointer(run.checkpoints, {"network": networks, "steps": steps}).restore(partial=True):
        raise AgentError(f"{run.path} has no checkpoint yet")
    return TrainedAgent(manifest, builder, config, specs, builder.make_policy(networks, specs, config), int(steps.numpy()))
