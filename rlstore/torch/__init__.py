"""PyTorch datasets over store versions, with no TensorFlow in the process (`pip install rlstore[torch]`).

`TransitionDataset`, `SequenceDataset` and `EpisodeDataset` read whole epochs from the shards
(`rlstore.torch.datasets`); `TransitionReplay` and `SequenceReplay` decode a version once into
RAM and sample batches at random, as a replay buffer does (`rlstore.torch.replay`).
"""
from rlstore.torch.datasets import EpisodeDataset, SequenceDataset, TransitionDataset, to_tensors
from rlstore.torch.replay import SequenceReplay, TransitionReplay

__all__ = ["TransitionDataset", "SequenceDataset", "EpisodeDataset", "TransitionReplay", "SequenceReplay",
           "to_tensors"]
