"""How many whole episodes a reader decodes at once: one rule for the tf.data and NumPy readers.

Readers decode chunks of episodes with one call and cut rows out of them. Large chunks cost
less per row and mix more episodes into each batch; small ones bound memory. So a chunk holds as
many episodes as decode to about CHUNK_BYTES, at most MAX_CHUNK_EPISODES.
"""
from __future__ import annotations

import math

import numpy as np

from rlstore.manifest import Manifest

CHUNK_BYTES = 16 << 20
MAX_CHUNK_EPISODES = 128
_TEXT_BYTES = 64  # a guess for text fields, whose size the schema does not give


def decoded_step_bytes(manifest: Manifest) -> int:
    """Bytes one step of a version takes decoded (images as pixels, text guessed)."""
    return sum(math.prod(spec.shape) * (_TEXT_BYTES if spec.dtype == "str" else np.dtype(spec.dtype).itemsize)
               for spec in manifest.schema.steps.values())


def chunk_episodes_for(manifest: Manifest) -> int:
    """Episodes per chunk when the caller does not say: small vector episodes get large chunks,
    image episodes few, so memory stays bounded."""
    episode_bytes = decoded_step_bytes(manifest) * manifest.num_steps / max(manifest.num_episodes, 1)
    return int(min(MAX_CHUNK_EPISODES, max(1, CHUNK_BYTES // max(episode_bytes, 1))))
