"""Session-wide fixtures: TensorFlow is imported once per worker and expensive data built once."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import rlstore.quiet  # noqa: E402,F401


@pytest.fixture(scope="session")
def vector_logs(tmp_path_factory):
    """12 npz episode logs of varying length (terminal and truncated) and their episodes."""
    from tests.helpers import vector_episode, write_npz_logs

    episodes = [vector_episode(5 + i, seed=i, terminal=i % 2 == 0) for i in range(12)]
    directory = tmp_path_factory.mktemp("vector_logs")
    return directory, write_npz_logs(directory, episodes), episodes
