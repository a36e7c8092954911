"""PyTorch datasets over store versions, with no TensorFlow in the process (`pip install rlstore[torch]`).

`TransitionDataset`, `SequenceDataset` and `EpisodeDataset`: see `rlstore.torch.datasets`.
"""
from rlstore.torch.datasets import EpisodeDataset, SequenceDataset, TransitionDataset, to_tensors

__all__ = ["TransitionDataset", "SequenceDataset", "EpisodeDataset", "to_tensors"]
