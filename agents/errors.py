"""Errors from training, evaluating and exporting agents that a user can act on."""
from __future__ import annotations

from rlstore.errors import RlstoreError


class AgentError(RlstoreError):
    """A run directory, dataset or environment that an agent cannot work with."""
