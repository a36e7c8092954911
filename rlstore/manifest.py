"""Version manifests: the immutable record of what a version holds and where it came from.

Two formats are read:

- `rlstore.version/1` lists every segment of the version in full, so each commit rewrote the
  whole history's records (metadata quadratic in the number of commits).
- `rlstore.version/2` (written today) holds the version's header (counts, schema, statistics,
  lineage, the ids it added and removed) and references to immutable, content-addressed
  segment lists (`rlstore.segment_lists`) that earlier versions share. A commit writes a few
  kilobytes whatever the history's length.

A format-2 document is sealed: `checksum` is the sha256 of its canonical JSON without that key,
so a flipped byte anywhere in it is caught on reading, and `parent.sha256` pins the bytes of
the version it was built on. The segment lists it names are pinned by their sha256. So the
bytes of a version (its file, its lists, its shards) are all fixed by its own file.

Unknown keys are kept as they are: other parts of rlstore (or later formats) add fields to a
version's document without breaking readers.
"""
from __future__ import annotations

import getpass
import hashlib
import json
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from typing import Any, Callable, Mapping, Sequence

from rlstore.errors import StoreError
from rlstore.schema import Schema
from rlstore.stats import EpisodeStats

FORMAT_1 = "rlstore.version/1"
MANIFEST_FORMAT = "rlstore.version/2"
READABLE_FORMATS = (FORMAT_1, MANIFEST_FORMAT)
_REQUIRED = ("dataset", "version", "schema", "num_episodes", "num_steps", "stats", "lineage")


class DamagedManifestError(StoreError):
    """A version's file (or one of its segment lists) cannot be read as what it claims to be."""

    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: damaged manifest: {reason}")


def writer_identity() -> dict[str, Any]:
    """Who wrote a version: user, host and process, for lineage."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {"user": user, "host": socket.gethostname(), "pid": os.getpid()}


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def canonical_json(document: Mapping[str, Any]) -> bytes:
    """The one byte encoding of a document: sorted keys, no whitespace (C encoder, fast)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def seal(document: Mapping[str, Any]) -> bytes:
    """The bytes of a format-2 version file: the document plus the checksum of the rest."""
    body = {key: value for key, value in document.items() if key != "checksum"}
    return canonical_json({**body, "checksum": hashlib.sha256(canonical_json(body)).hexdigest()})


def parse_manifest(path: str, raw: bytes, expected_version: int | None = None) -> dict[str, Any]:
    """The document of a version file, checked; DamagedManifestError (naming `path`) if not.

    Format 2 documents must match their checksum. Every format must name its dataset and
    version (the one in the file name) and hold the keys every reader needs.
    """
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as error:
        raise DamagedManifestError(path, f"not JSON ({error})") from None
    if not isinstance(document, dict):
        raise DamagedManifestError(path, "not a JSON object")
    form = document.get("format")
    if form not in READABLE_FORMATS:
        raise DamagedManifestError(path, f"unknown format {form!r} (this rlstore reads {', '.join(READABLE_FORMATS)})")
    if form == MANIFEST_FORMAT:
        body = {key: value for key, value in document.items() if key != "checksum"}
        if document.get("checksum") != hashlib.sha256(canonical_json(body)).hexdigest():
            raise DamagedManifestError(path, "checksum differs from the content (the file was changed)")
    missing = [key for key in (*_REQUIRED, "segment_lists" if form == MANIFEST_FORMAT else "segments")
               if key not in document]
    if missing:
        raise DamagedManifestError(path, f"missing {', '.join(missing)}")
    if expected_version is not None and document["version"] != expected_version:
        raise DamagedManifestError(path, f"says it is version {document['version']!r}")
    return document


@dataclass(frozen=True)
class Manifest:
    """A parsed `versions/<N>.json`. `data` is the JSON document exactly as stored.

    `segments` (every segment record of the version, in order) is read on first use: for
    format 2 it comes from the segment lists, each read through `load_list(reference)`.
    `file_sha256` is the sha256 of the version file's bytes (None if not read from disk).
    """

    data: Mapping[str, Any]
    path: str | None = None
    file_sha256: str | None = None
    load_list: Callable[[Mapping[str, Any]], Sequence[Mapping[str, Any]]] | None = \
        field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.data["dataset"]

    @property
    def version(self) -> int:
        return self.data["version"]

    @property
    def format(self) -> str:
        return self.data.get("format", FORMAT_1)

    @cached_property
    def _segments(self) -> tuple[Mapping[str, Any], ...]:
        if "segments" in self.data:
            return tuple(self.data["segments"])
        return tuple(record for reference in self.data["segment_lists"] for record in self._load(reference))

    def _load(self, reference: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
        if self.load_list is None:
            raise StoreError(f"{self.name}@{self.version}: this manifest was not read from a store")
        return self.load_list(reference)

    @property
    def segments(self) -> list[Mapping[str, Any]]:
        return list(self._segments)

    @property
    def num_segments(self) -> int:
        """Without reading the segment lists when the document records the count."""
        count = self.data.get("num_segments")
        return count if isinstance(count, int) else len(self._segments)

    @property
    def added(self) -> list[Mapping[str, Any]]:
        """The records of the segments this version added to its parent."""
        if self.format == FORMAT_1:
            return [s for s in self._segments if s.get("added_in") == self.version]
        # A commit appends what it adds at the end of its last lists: read back only those.
        wanted, found = set(self.data.get("added", [])), []
        for reference in reversed(self.data["segment_lists"]):
            if not wanted:
                break
            records = [s for s in self._load(reference) if s["id"] in wanted]
            wanted -= {s["id"] for s in records}
            found[:0] = records
        return found

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
