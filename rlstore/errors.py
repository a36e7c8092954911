"""Errors a user can act on.

Every error raised for bad input names where the problem is (file, episode, step, field) so the
CLI can print one readable line instead of a traceback.
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
from dataclasses import asdict, dataclass


class RlstoreError(Exception):
    """Base class for errors whose message is meant for the user, not a traceback."""

    def readable(self) -> str:
        """The one line the CLI prints."""
        return str(self)


def describe(error: BaseException) -> str:
    """One line for any error a child process reports to its parent: ours as the user reads
    them, anything else with its type, since a bare message may not say what failed."""
    return error.readable() if isinstance(error, RlstoreError) else f"{type(error).__name__}: {error}"


class StoreError(RlstoreError):
    """The store was asked for something it does not hold or cannot do."""


class DatasetNameError(StoreError):
    """A dataset name or reference is malformed or would escape the store root."""


@dataclass(frozen=True)
class Location:
    """Where in the input a problem was found; unknown parts stay None."""

    file: str | None = None
    episode: int | str | None = None
    step: int | None = None
    field: str | None = None

    def at(self, **parts) -> "Location":
        """A copy with some parts filled in, e.g. `where.at(step=3, field='reward')`."""
        return dataclasses.replace(self, **parts)

    def describe(self) -> str:
        parts = []
        if self.file is not None:
            parts.append(f"file {self.file}")
        if self.episode is not None:
            parts.append(f"episode {self.episode}")
        if self.step is not None:
            parts.append(f"step {self.step}")
        if self.field is not None:
            parts.append(f"field '{self.field}'")
        return ", ".join(parts)


# The payload is base64 of JSON: its alphabet passes unchanged through every repr() and escaping
# a runner applies to the message on its way back, where raw JSON broke on backslashes and quotes.
_WIRE = re.compile(r"<rlstore-error>([A-Za-z0-9_=-]*)</rlstore-error>")


class LocatedError(RlstoreError):
    """An error with a reason and the place it is about, that survives a trip through Beam.

    Raised inside Beam workers too: Beam re-raises worker failures as its own exception types
    with the original message embedded, so the message carries a machine-readable copy of the
    reason, the location and the error's kind that `from_exception` recovers on the driver.
    """

    def __init__(self, reason: str, location: Location = Location()):
        self.reason = reason
        self.location = location
        document = {"kind": type(self).__name__, "reason": reason, **asdict(location)}
        payload = base64.urlsafe_b64encode(json.dumps(document).encode()).decode()
        super().__init__(f"{self.readable()} <rlstore-error>{payload}</rlstore-error>")

    def readable(self) -> str:
        where = self.location.describe()
        return f"{where}: {self.reason}" if where else self.reason

    @staticmethod
    def from_exception(error: BaseException) -> "LocatedError | None":
        """Recover a LocatedError from an exception Beam raised on the driver.

        Runners differ: some re-raise our own type (possibly rebuilt without its location),
        others wrap it in their own; the location travels in the message either way.
        """
        if isinstance(error, LocatedError) and error.location != Location():
            return error
        match = _WIRE.search(repr(error.args) + str(error))
        if not match:
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(match.group(1)))
        except (binascii.Error, ValueError):
            return None
        kind = {cls.__name__: cls for cls in (BadInputError, StorageError)}.get(data.pop("kind", None), BadInputError)
        reason = data.pop("reason")
        return kind(reason, Location(**data))

    def __reduce__(self):
        return (type(self), (self.reason, self.location))


class BadInputError(LocatedError):
    """Input data that cannot be ingested (or a file the input names that cannot be read)."""


class StorageError(LocatedError):
    """The store's file system refused a write (full disk, read-only, file size limit): not the
    input's fault, so never a reject under --on-error=skip; `location.file` is what was being written."""


class PipelineError(RlstoreError):
    """A Beam pipeline could not start or failed for a reason that is neither bad input nor storage."""
