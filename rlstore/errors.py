"""Errors a user can act on.

Every error raised for bad input names where the problem is (file, episode, step, field) so the
CLI can print one readable line instead of a traceback.
"""
from __future__ import annotations

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


_WIRE = re.compile(r"<rlstore-error>(.*?)</rlstore-error>", re.S)


class BadInputError(RlstoreError):
    """Input data that cannot be ingested.

    Raised inside Beam workers too: Beam re-raises worker failures as its own exception types
    with the original message embedded, so the message carries a machine-readable copy of the
    location that `from_exception` recovers on the driver.
    """

    def __init__(self, reason: str, location: Location = Location()):
        self.reason = reason
        self.location = location
        payload = json.dumps({"reason": reason, **asdict(location)})
        super().__init__(f"{self.readable()} <rlstore-error>{payload}</rlstore-error>")

    def readable(self) -> str:
        where = self.location.describe()
        return f"{where}: {self.reason}" if where else self.reason

    @classmethod
    def from_exception(cls, error: BaseException) -> "BadInputError | None":
        """Recover a BadInputError from an exception Beam raised on the driver.

        Runners differ: some re-raise our own type (possibly rebuilt without its location),
        others wrap it in their own; the location travels in the message either way.
        """
        if isinstance(error, cls) and error.location != Location():
            return error
        match = _WIRE.search(repr(error.args) + str(error))
        if not match:
            return None
        data = json.loads(match.group(1).replace('\\"', '"'))
        reason = data.pop("reason")
        return cls(reason, Location(**data))

    def __reduce__(self):
        return (BadInputError, (self.reason, self.location))
