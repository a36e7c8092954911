"""PyTorch datasets over store versions, with no TensorFlow in the process (`pip install rlstore[torch]`).

`TransitionDataset`, `SequenceDataset` and `EpisodeDataset` read whole epochs from the shards
(`rlstore.torch.datasets`); `TransitionReplay` and `SequenceReplay` decode a version once into
RAM and sample batches at random, as a replay buffer does, and their `loader()` (a
`ReplayLoader`) serves them through DataLoader workers in blocks (`rlstore.torch.replay`).
"""
from rlstore.torch.datasets import EpisodeDataset, SequenceDataset, TransitionDataset
from rlstore.torch.handoff import to_tensors
from rlstore.torch.replay import ReplayLoader, SequenceReplay, TransitionReplay

__all__ = ["TransitionDataset", "SequenceDataset", "EpisodeDataset", "TransitionReplay", "SequenceReplay",
           "ReplayLoader", "to_tensors"]
