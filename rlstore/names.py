"""Dataset names and `NAME@VERSION` references.

Names become directory names under the store root, so they are restricted to a safe alphabet:
no separators, no dots at the start, nothing that could climb out of the root.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from rlstore.errors import DatasetNameError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,127}")
_VERSION = re.compile(r"[0-9]+")  # ASCII digits only: str.isdigit() and int() also take '١' and '²'


def validate_name(name: str) -> str:
    """Returns `name` if it is a safe dataset name, else raises DatasetNameError."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise DatasetNameError(
            f"invalid dataset name {name!r}: use 1-128 letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class DatasetRef:
    """A dataset name with an optional pinned version (None means the latest)."""

    name: str
    version: int | None = None

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}@{self.version}"


def parse_ref(ref: str) -> DatasetRef:
    """Parses `NAME` or `NAME@N`."""
    name, sep, version = str(ref).partition("@")
    validate_name(name)
    if not sep:
        return DatasetRef(name)
    if not _VERSION.fullmatch(version) or int(version) < 1:
        raise DatasetNameError(f"invalid version in {ref!r}: expected NAME@N with N >= 1")
    return DatasetRef(name, int(version))
