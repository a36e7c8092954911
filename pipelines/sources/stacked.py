"""Sources whose observations are already frame stacks (npz, RLDS, ...): `--frame-stack k`, or detected.

The wrapped format reads as usual; each episode's observation [T, *S, k] is checked to be a
Dopamine-style stack and replaced by its single frames [T, *S] (`rlstore.frames.unstack`), so
the store holds every frame once and readers rebuild the stacks. Stacks that do not slide
frame by frame, or start without zero padding, are bad input naming the step.

Without `--frame-stack`, ingest looks at the first episode (`detected_stack`): observations that
pass `rlstore.frames.detect_stack` (the same check `unstack` makes, so the stacks rebuilt are
the ones the source held, byte for byte) are stored as frames; anything else (RGB cameras,
vectors) is stored whole, as before. A later episode that is not a stack then stops the ingest
naming its step, and says that `--frame-stack 1` stores observations whole. Stacks a TFDS source
stored as PNG images (rlstore's own layout before frames were stored once) are decoded, which is
lossless; JPEG stacks are refused (a lossy codec does not keep the shift exact).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from rlstore.episode import Episode
from rlstore.errors import BadInputError, Location
from rlstore.frames import FrameStackError, detect_stack, unstack
from rlstore.images import EncodedImages, decode_png
from rlstore.pipelines.sources.base import SourceFile, SourceFormat, WorkItem


class FrameStacked:
    """A source format whose observations are stacks of `frame_stack` frames on the last axis;
    `detected`: the stack size came from the first episode, not from the user."""

    def __init__(self, inner: SourceFormat, frame_stack: int, detected: bool = False):
        if frame_stack < 2:
            raise BadInputError(f"--frame-stack must be at least 1 (1: observations stored whole), got {frame_stack}")
        self.inner = inner
        self.name = inner.name
        self.frame_stack = frame_stack
        self.detected = detected

    def detect(self, path: Path) -> bool:
        return self.inner.detect(path)

    def work_items(self, paths: Sequence[Path]) -> list[WorkItem]:
        return self.inner.work_items(paths)

    def read(self, item: WorkItem) -> Iterator[tuple[Location, Episode]]:
        for where, episode in self.inner.read(item):
            yield where, single_frames(episode, self.frame_stack, where, self.detected)

    def source_files(self, item: WorkItem) -> list[SourceFile]:
        return self.inner.source_files(item)

    def run_metadata(self, paths: Sequence[Path]) -> dict[str, Any]:
        return {**self.inner.run_metadata(paths), **stack_metadata(self.frame_stack, self.detected)}


def stack_metadata(frame_stack: int, detected: bool) -> dict[str, Any]:
    """What the lineage's run metadata records of the stacks."""
    return {"frame_stack": frame_stack, **({"frame_stack_detected": True} if detected else {})}


def single_frames(episode: Episode, frame_stack: int, where: Location, detected: bool = False) -> Episode:
    """`episode` with its stacked observations replaced by their single frames."""
    field = where.at(field="steps/observation")
    hint = (f" (stacks of {frame_stack} frames were detected in the first episode; --frame-stack 1 stores "
            "observations whole)") if detected else ""
    observation = _pixels(episode["steps"]["observation"], field)
    if observation is None:
        raise BadInputError("--frame-stack needs the observation to be one uint8 array of frame stacks" + hint, field)
    try:
        frames = unstack(observation, frame_stack)
    except FrameStackError as error:
        raise BadInputError(str(error) + hint, field.at(step=error.step)) from None
    return {**episode, "steps": {**episode["steps"], "observation": frames}}


def detected_stack(source_format: SourceFormat, items: Sequence[WorkItem]) -> int | None:
    """The stack size of the first episode's observations (`rlstore.frames.detect_stack`), or
    None: not stacks, or no episode could be read (deriving the schema then reports why)."""
    for item in items:
        try:
            for where, episode in source_format.read(item):
                observation = episode["steps"].get("observation") if isinstance(episode.get("steps"), dict) else None
                if isinstance(observation, EncodedImages) and not _may_be_png_stacks(observation):
                    return None
                return detect_stack(_pixels(observation, where.at(field="steps/observation")))
        except BadInputError:
            continue
    return None


def _may_be_png_stacks(column: EncodedImages) -> bool:
    """Worth decoding to look for stacks: PNG images of 2 or more channels."""
    return column.image_format == "png" and len(column.image_shape) == 3 and column.image_shape[-1] >= 2


def _pixels(observation: Any, field: Location) -> np.ndarray | None:
    """The observation as one uint8 array: itself, or its PNG images decoded; None if it is neither."""
    if isinstance(observation, EncodedImages):
        if observation.image_format != "png":
            raise BadInputError(f"{observation.image_format.upper()} images cannot be frame stacks: a lossy codec "
                                "does not keep each stack its predecessor shifted by one frame", field)
        return decode_png(observation, field)
    if isinstance(observation, np.ndarray) and observation.dtype == np.uint8:
        return observation
    return None
