"""`--frame-stack k` for sources whose observations are already frame stacks (npz, RLDS, ...).

The wrapped format reads as usual; each episode's observation [T, *S, k] is checked to be a
Dopamine-style stack and replaced by its single frames [T, *S] (`rlstore.frames.unstack`), so
the store holds every frame once and readers rebuild the stacks. Stacks that do not slide
frame by frame, or start without zero padding, are bad input naming the step.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from rlstore.episode import Episode
from rlstore.errors import BadInputError, Location
from rlstore.frames import FrameStackError, unstack
from rlstore.pipelines.sources.base import SourceFile, SourceFormat, WorkItem


class FrameStacked:
    """A source format whose observations are stacks of `frame_stack` frames on the last axis."""

    def __init__(self, inner: SourceFormat, frame_stack: int):
        if frame_stack < 1:
            raise BadInputError(f"--frame-stack must be at least 1, got {frame_stack}")
        self.inner = inner
        self.name = inner.name
        self.frame_stack = frame_stack

    def detect(self, path: Path) -> bool:
        return self.inner.detect(path)

    def work_items(self, paths: Sequence[Path]) -> list[WorkItem]:
        return self.inner.work_items(paths)

    def read(self, item: WorkItem) -> Iterator[tuple[Location, Episode]]:
        for where, episode in self.inner.read(item):
            yield where, single_frames(episode, self.frame_stack, where)

    def source_files(self, item: WorkItem) -> list[SourceFile]:
        return self.inner.source_files(item)

    def run_metadata(self, paths: Sequence[Path]) -> dict[str, Any]:
        return {**self.inner.run_metadata(paths), "frame_stack": self.frame_stack}


def single_frames(episode: Episode, frame_stack: int, where: Location) -> Episode:
    """`episode` with its stacked observations replaced by their single frames."""
    observation = episode["steps"]["observation"]
    field = where.at(field="steps/observation")
    if not isinstance(observation, np.ndarray) or observation.dtype != np.uint8:
        raise BadInputError("--frame-stack needs the observation to be one uint8 array of frame stacks", field)
    try:
        frames = unstack(observation, frame_stack)
    except FrameStackError as error:
        raise BadInputError(str(error), field.at(step=error.step)) from None
    return {**episode, "steps": {**episode["steps"], "observation": frames}}
