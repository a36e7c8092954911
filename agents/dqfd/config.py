"""DQfD hyper-parameters. TensorFlow-free, so the CLI can list them as flags without importing TF.

The loss is the paper's  J = J_DQ + λ1·J_n + λ2·J_E + λ3·J_L2  (Hester et al. 2018, eq. 1-2):
1-step and n-step double-Q TD losses, the large-margin supervised loss on demonstration rows
and L2 regularisation. The λ defaults (1, 1, 1e-5), n = 10 and the margin 0.8 are the paper's,
and so are the online phase's ε = 0.01, α = 0.4, β0 = 0.6, ε_a = 0.001 and ε_d = 1.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class DQfDConfig:
    """Every field is also a `rlstore train dqfd` / `rlstore run dqfd` flag (`--n-step 10`, `--demo-ratio 0.25`).

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
    # ---- the online phase (`rlstore run dqfd`); `train` ignores these ----
    demo_ratio: float = dataclasses.field(
        default=0.25, metadata={"help": "online: share of each batch drawn from the demonstrations (0: plain "
                                        "prioritized n-step double DQN, no demonstrations at all)"})
    pretrain_steps: int = dataclasses.field(
        default=1000, metadata={"help": "online: updates on demonstrations alone before any acting"})
    epsilon: float = dataclasses.field(default=0.01, metadata={"help": "online: ε of the actors' ε-greedy policy"})
    priority_exponent: float = dataclasses.field(
        default=0.4, metadata={"help": "online: α, sampling probability ∝ priority^α"})
    importance_exponent: float = dataclasses.field(
        default=0.6, metadata={"help": "online: β0, the importance-sampling exponent, annealed to 1 over the run"})
    priority_epsilon: float = dataclasses.field(
        default=0.001, metadata={"help": "online: ε in priority = |TD| + ε"})
    demo_priority_bonus: float = dataclasses.field(
        default=1.0, metadata={"help": "online: ε_d added to the priority of demonstrations"})
    replay_size: int = dataclasses.field(
        default=100_000, metadata={"help": "online: the agent's replay table, FIFO beyond this many transitions"})
    min_replay_size: int = dataclasses.field(
        default=500, metadata={"help": "online: agent transitions needed before the replay table is sampled"})
    samples_per_insert: float = dataclasses.field(
        default=8.0, metadata={"help": "online: times each agent transition is sampled on average "
                                       "(the rate limiter holding acting to learning)"})
    variable_update_period: int = dataclasses.field(
        default=100, metadata={"help": "online: actor steps between fetches of the learner's weights"})

    def __post_init__(self):
        if self.batch_size < 1 or self.learning_rate <= 0 or not self.hidden_sizes:
            raise ValueError("batch_size and learning_rate must be positive and hidden_sizes non-empty")
        if self.n_step < 1 or self.target_update_period < 1 or not 0.0 <= self.gamma <= 1.0:
            raise ValueError("n_step and target_update_period must be >= 1 and gamma in [0, 1]")
        if min(self.margin, self.n_step_weight, self.supervised_weight, self.l2_weight) < 0 or self.huber_delta <= 0:
            raise ValueError("margin and loss weights must be >= 0 and huber_delta > 0")
        if not 0.0 <= self.demo_ratio < 1.0 or not 0.0 <= self.epsilon <= 1.0:
            raise ValueError("demo_ratio must be in [0, 1) and epsilon in [0, 1]")
        if self.pretrain_steps < 0 or self.replay_size < 1 or self.min_replay_size < 1 or self.variable_update_period < 1:
            raise ValueError("pretrain_steps must be >= 0; replay_size, min_replay_size, variable_update_period >= 1")
        if min(self.priority_exponent, self.importance_exponent, self.priority_epsilon, self.demo_priority_bonus) < 0 \
                or self.importance_exponent > 1 or self.samples_per_insert <= 0:
            raise ValueError("priority settings must be >= 0, importance_exponent <= 1 and samples_per_insert > 0")
