"""Paths read from store metadata, checked to stay inside the directory they belong to.

Manifests, staging lists and logs are files that anyone with write access to the store can
edit. A path taken from one of them is only ever used after it has been resolved (symlinks
included) and found strictly inside the directory it is meant to be in; anything else is an
`UnsafePathError`, which readers report and housekeeping skips, never follows.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

from rlstore.errors import StoreError


class UnsafePathError(StoreError):
    """A path from store metadata would leave the directory it must stay in."""


def confine(base: Path, relative: object, *, what: str) -> Path:
    """`base / relative`, resolved, if it lies strictly inside `base`; else UnsafePathError.

    `relative` must be a relative POSIX path with no `..` part. The resolved path must also be
    inside the resolved `base`, which catches symlinks that point elsewhere.
    """
    if not isinstance(relative, str) or not relative or "\x00" in relative or "\\" in relative:
        raise UnsafePathError(f"{what} {relative!r} is not a relative path")
    parts = PurePosixPath(relative)
    if parts.is_absolute() or ".." in parts.parts:
        raise UnsafePathError(f"{what} {relative!r} would leave {base}")
    anchor = base.resolve()
    resolved = (anchor / parts).resolve()
    if resolved == anchor or not resolved.is_relative_to(anchor):
        raise UnsafePathError(f"{what} {relative!r} resolves to {resolved}, outside {anchor}")
    return resolved


def confine_child(directory: Path, name: object, *, what: str) -> Path:
    """`directory / name` for a single path component that resolves to a direct child."""
    path = confine(directory, name, what=what)
    if path.parent != directory.resolve():
        raise UnsafePathError(f"{what} {name!r} is not an entry of {directory}")
    return path
