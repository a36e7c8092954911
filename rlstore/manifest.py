"""Version manifests: the immutable record of what a version holds and where it came from."""
from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

from rlstore.schema import Schema
from rlstore.stats import EpisodeStats

MANIFEST_FORMAT = "rlstore.version/1"


def writer_identity() -> dict[str, Any]:
    """Who wrote a version: user, host and process, for lineage."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {"user": user, "host": socket.gethostname(), "pid": os.getpid()}


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Manifest:
    """A parsed `versions/<N>.json`. `data` is the JSON document exactly as stored."""

    data: Mapping[str, Any]

    @property
    def name(self) -> str:
        return self.data["dataset"]

    @property
    def version(self) -> int:
        return self.data["version"]

    @property
    def segments(self) -> list[Mapping[str, Any]]:
        return list(self.data["segments"])

    @property
    def schema(self) -> Schema:
        return Schema.from_json(self.data["schema"])

    @property
    def num_episodes(self) -> int:
        return self.data["num_episodes"]

    @property
    def num_steps(self) -> int:
        return self.data["num_steps"]

    @property
    def stats(self) -> EpisodeStats:
        return EpisodeStats.from_json(self.data["stats"])

    @property
    def lineage(self) -> Mapping[str, Any]:
        return self.data["lineage"]
