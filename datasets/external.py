"""Locating the real data other projects wrote, kept in `shared/external/` beside the repository.

Tests and benchmarks read it from there (CI clones the repository with `shared/` beside it);
`$RLSTORE_EXTERNAL` overrides the location.
"""
from __future__ import annotations

import os
from pathlib import Path

_BESIDE_REPO = Path(__file__).resolve().parents[2] / "shared" / "external"


def external_file(name: str) -> Path:
    """The path of `name` in the external data directory; a clear error if it is not there."""
    directory = Path(os.environ.get("RLSTORE_EXTERNAL", _BESIDE_REPO))
    path = (directory / name).resolve()  # ingest reports resolved paths; shared/ may be a symlink
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the external data lives in shared/external beside the "
                                "repository, or set RLSTORE_EXTERNAL")
    return path
