"""DQfD hyper-parameters. TensorFlow-free, so the CLI can list them as flags without importing TF.

The loss is the paper's  J = J_DQ + λ1·J_n + λ2·J_E + λ3·J_L2  (Hester et al. 2018, eq. 1-2):
1-step and n-step double-Q TD losses, the large-margin supervised loss on demonstration rows
and L2 regularisation. The λ defaults (1, 1, 1e-5), n = 10 and the margin 0.8 are the paper's.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class DQfDConfig:
    """Every field is also a `rlstore train dqfd` flag (`--n-step 10`, `--margin 0.8`, ...).

    Departures from the paper's Atari settings, for the small vector tasks rlstore ships: an MLP
    torso instead of the conv net, Adam at 3e-4 (paper 6.25e-5) and a target update every 1,000
    updates (paper 10,000), so runs of a few thousand updates still bootstrap from a fresh target.
    """

    batch_size: int = dataclasses.field(default=256, metadata={"help": "transitions per update"})
    hidden_sizes: tuple[int, ...] = dataclasses.field(default=(256, 256), metadata={"help": "MLP torso widths"})
    dueling: bool = dataclasses.field(default=True, metadata={"help": "dueling head: V(s) + A(s,a) - mean_a A(s,a)"})
    learning_rate: float = dataclasses.field(default=3e-4, metadata={"help": "Adam learning rate"})
    gamma: float = dataclasses.field(default=0.99, metadata={"help": "discount per step"})
    n_step: int = dataclasses.field(default=10, metadata={"help": "n of the n-step TD loss"})
    margin: float = dataclasses.field(default=0.8, metadata={"help": "large-margin l(a_E, a) for a != a_E"})
    n_step_weight: float = dataclasses.field(default=1.0, metadata={"help": "λ1: weight of the n-step TD loss"})
    supervised_weight: float = dataclasses.field(default=1.0, metadata={"help": "λ2: weight of the margin loss"})
    l2_weight: float = dataclasses.field(default=1e-5, metadata={"help": "λ3: L2 regularisation of the Q-network"})
    huber_delta: float = dataclasses.field(default=1.0, metadata={"help": "Huber threshold of the TD losses"})
    target_update_period: int = dataclasses.field(
        default=1000, metadata={"help": "updates between copies of the online network into the target network"})
    normalize_observations: bool = dataclasses.field(
        default=True, metadata={"help": "standardise non-image observations with the dataset's mean and std"})
    prefetch: int = dataclasses.field(default=8, metadata={"help": "batches the input pipeline keeps ready"})

    def __post_init__(self):
        if self.batch_size < 1 or self.learning_rate <= 0 or not self.hidden_sizes:
            raise ValueError("batch_size and learning_rate must be positive and hidden_sizes non-empty")
        if self.n_step < 1 or self.target_update_period < 1 or not 0.0 <= self.gamma <= 1.0:
            raise ValueError("n_step and target_update_period must be >= 1 and gamma in [0, 1]")
        if min(self.margin, self.n_step_weight, self.supervised_weight, self.l2_weight) < 0 or self.huber_delta <= 0:
            raise ValueError("margin and loss weights must be >= 0 and huber_delta > 0")
