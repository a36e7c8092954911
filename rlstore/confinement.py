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


class ConfinedEntries:
    """Entries `<subdirectory>/<name>` of `base`, checked like `confine_child` against a
    directory resolved once.

    A version of 10,000 segments has 10,000 such paths: resolving each in full walks every
    component of it (a system call per component), while an ordinary entry only needs one
    `lstat` to show it is not a symlink. Anything else (a symlink, `..`, more components, a
    `subdirectory` that itself leads elsewhere) takes the full check and its precise error.
    """

    def __init__(self, base: Path, subdirectory: str):
        self._base = base
        self._prefix = subdirectory + "/"
        anchor = base.resolve()
        self.directory = (anchor / subdirectory).resolve()
        self._fast = self.directory.parent == anchor

    def path(self, relative: object, *, what: str) -> Path:
        if self._fast and isinstance(relative, str) and relative.startswith(self._prefix):
            name = relative[len(self._prefix):]
            if name not in ("", ".", "..") and not any(c in name for c in "/\\\x00"):
                path = self.directory / name
                if not path.is_symlink():
                    return path
        path = confine(self._base, relative, what=what)
        if path.parent != self.directory:
            raise UnsafePathError(f"{what} {relative!r} is not inside {self.directory}")
        return path
