"""tf.data readers over store versions, and mixing of several sources.

    from rlstore.reading import episodes, steps, transitions, sequences, mix
    from rlstore.reading.transforms import episode_transitions, episode_sequences

Every reader decodes whole episodes at once (never step by step), shuffles (shard order,
an episode buffer, rows within a chunk), batches, prefetches, repeats and is seeded: the same
seed gives the same batches. Conventions (n-step discount includes gamma^m; sequence padding
and mask) are documented in `rlstore.reading.transforms`.
"""
from rlstore.reading.mixing import Mix, mix
from rlstore.reading.readers import episodes, sequences, steps, transitions

__all__ = ["episodes", "steps", "transitions", "sequences", "mix", "Mix"]
