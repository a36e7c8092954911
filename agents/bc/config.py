"""BC hyper-parameters. TensorFlow-free, so the CLI can list them as flags without importing TF."""
from __future__ import annotations

import dataclasses

CONTINUOUS_LOSSES = ("mse", "gaussian_nll")


@dataclasses.dataclass(frozen=True)
class BCConfig:
    """Every field is also a `rlstore train bc` flag (`--batch-size`, `--hidden-sizes 256,256`, ...).

    Defaults are the issue's workload (batch 256, MLP 256x256). On the CartPole quality benchmark
    (benchmarks/bc_quality.py) standardised observations lifted the worst of 3 seeds from about
    450 to above 480, and Adam at 3e-4 edged 1e-3 (mean of 3 seeds over 60 episodes: 489 vs 486).
    """

    batch_size: int = dataclasses.field(default=256, metadata={"help": "steps per update"})
    hidden_sizes: tuple[int, ...] = dataclasses.field(default=(256, 256), metadata={"help": "MLP torso widths"})
    learning_rate: float = dataclasses.field(default=3e-4, metadata={"help": "Adam learning rate"})
    continuous_loss: str = dataclasses.field(
        default="mse", metadata={"help": "loss for continuous actions", "choices": CONTINUOUS_LOSSES})
    normalize_observations: bool = dataclasses.field(
        default=True, metadata={"help": "standardise non-image observations with the dataset's mean and std"})
    prefetch: int = dataclasses.field(default=8, metadata={"help": "batches the input pipeline keeps ready"})

    def __post_init__(self):
        if self.continuous_loss not in CONTINUOUS_LOSSES:
            raise ValueError(f"continuous_loss must be one of {CONTINUOUS_LOSSES}, got {self.continuous_loss!r}")
        if self.batch_size < 1 or self.learning_rate <= 0 or not self.hidden_sizes:
            raise ValueError("batch_size and learning_rate must be positive and hidden_sizes non-empty")
