"""Source formats the ingest pipeline reads, by name, and `--format auto` detection."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from rlstore.pipelines.sources.base import SourceFile, SourceFormat, WorkItem, expand_paths, input_bytes
from rlstore.pipelines.sources.d4rl import D4rlFormat
from rlstore.pipelines.sources.dqn_replay import DqnReplayFormat
from rlstore.pipelines.sources.envlogger import EnvloggerFormat
from rlstore.pipelines.sources.imitation import ImitationFormat
from rlstore.pipelines.sources.minari import MinariFormat
from rlstore.pipelines.sources.npz import NpzFormat
from rlstore.pipelines.sources.rlds import RldsFormat
from rlstore.pipelines.sources.stacked import FrameStacked
from rlstore.errors import BadInputError, Location

# Detection order: specific layouts first; npz (any .npz file) last, after imitation's flat npz.
FORMATS: dict[str, type] = {f.name: f for f in (EnvloggerFormat, MinariFormat, RldsFormat, DqnReplayFormat, D4rlFormat,
                                                ImitationFormat, NpzFormat)}


def get_format(name: str, options: Mapping[str, Any] | None = None) -> SourceFormat:
    """An instance of format `name`; `options` are that format's keyword arguments (e.g. D4RL's
    max_episode_steps). Options a format does not take are an error, not silently ignored.

    `frame_stack` is taken by every format: dqn_replay's frames are single already (it names
    Dopamine's stack size); any other format's observations are read as stacks of that many
    frames and stored once (`FrameStacked`), or, with 1, stored whole (ingest then does not
    look for stacks). `frame_stack_detected` says the stack size came from the first episode.
    """
    if name not in FORMATS:
        raise BadInputError(f"unknown format {name!r} (known: auto, {', '.join(FORMATS)})")
    options = dict(options or {})
    frame_stack, detected = None, False
    if FORMATS[name] is not DqnReplayFormat:
        frame_stack, detected = options.pop("frame_stack", None), bool(options.pop("frame_stack_detected", False))
    try:
        source_format = FORMATS[name](**options)
    except TypeError:
        raise BadInputError(f"format {name!r} does not take options {sorted(options)}") from None
    if frame_stack is None or int(frame_stack) == 1:  # FrameStacked refuses 0 and below
        return source_format
    return FrameStacked(source_format, int(frame_stack), detected)


def detect_format(paths: Sequence[Path], options: Mapping[str, Any] | None = None) -> SourceFormat:
    """The one format every path looks like; ambiguous or unknown input is an error naming the path.

    Formats are tried in FORMATS order, so a more specific format goes before a generic one.
    """
    chosen: type | None = None
    for path in paths:
        matches = [f for f in FORMATS.values() if f().detect(path)]
        if not matches:
            problem = "directory is empty" if path.is_dir() and not any(path.iterdir()) else \
                "cannot tell the format; pass --format (known: " + ", ".join(FORMATS) + ")"
            raise BadInputError(problem, Location(file=str(path)))
        if chosen is not None and matches[0] is not chosen:
            raise BadInputError(f"inputs mix formats ({chosen.name} and {matches[0].name}); ingest them separately",
                                Location(file=str(path)))
        chosen = matches[0]
    return get_format(chosen.name, options)


__all__ = ["FORMATS", "SourceFile", "SourceFormat", "WorkItem", "detect_format", "expand_paths", "get_format",
           "input_bytes"]
