"""Checkpoints with `tf.train.Checkpoint`: a run interrupted or extended later picks up where it stopped.

The learner's update counter is a tf.Variable saved with the weights and optimizer state, so a
restored run continues its step count instead of starting again at zero.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import tensorflow as tf


class Checkpointer:
    """Saves and restores a named set of trackable objects under one directory (keeps the last few)."""

    def __init__(self, directory: str | Path, objects: Mapping[str, tf.Module | tf.Variable], max_to_keep: int = 3):
        self._checkpoint = tf.train.Checkpoint(**objects)
        self._manager = tf.train.CheckpointManager(self._checkpoint, str(directory), max_to_keep=max_to_keep)

    @property
    def latest(self) -> str | None:
        return self._manager.latest_checkpoint

    def restore(self, partial: bool = False) -> bool:
        """Restores the latest checkpoint if there is one; `partial` allows objects left out (e.g. the optimizer)."""
        if self.latest is None:
            return False
        status = self._checkpoint.restore(self.latest)
        if partial:
            status.expect_partial()
        else:
            status.assert_existing_objects_matched()
        return True

    def save(self, step: int) -> str:
        return self._manager.save(checkpoint_number=step)
