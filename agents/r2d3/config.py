"""R2D3 hyper-parameters. TensorFlow-free, so the CLI can list them as flags without importing TF.

R2D2 (Kapturowski et al. 2019): an LSTM Q-network trained on fixed-length, overlapping sequences
(`sequence_length`, `period`) whose recurrent state is stored with each replay item and refreshed
by a `burn_in` prefix that carries no loss; n-step double-Q targets under the value rescaling
h(x) = sign(x)(sqrt(|x|+1)-1)+εx; prioritized sequence replay with priority
η·max|δ| + (1-η)·mean|δ| over the sequence. R2D3 (Paine et al. 2019) adds a demonstration
replay from which every batch takes the share `demo_ratio` (the paper's best was 1/256).
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class R2D3Config:
    """Every field is also a `rlstore train r2d3` / `rlstore run r2d3` flag (`--burn-in 8`, ...).

    Departures from the papers' Atari settings, for the small vector tasks rlstore ships: an MLP
    torso and a 64-unit LSTM instead of the conv net and 512 units, sequences of 40 steps every
    20 instead of 80 every 40, Adam at 1e-3 (paper 1e-4), a target update every 400 updates (paper
    2,500), γ = 0.99 (paper 0.997) and no burn-in by default: burn-in steps carry no loss, so the
    first `burn_in` steps of every episode (where a memory task shows its cue) would never teach
    the network what to remember. DQfD's margin loss (`supervised_weight`) and pre-training
    (`pretrain_steps`) are off, as in R2D3; the `memory` preset (rlstore.agents.presets) turns
    them on. `epsilon` .. `samples_per_insert` and `pretrain_steps` matter only online.
    """

    batch_size: int = dataclasses.field(default=32, metadata={"help": "sequences per update"})
    sequence_length: int = dataclasses.field(default=40, metadata={"help": "learning steps per sequence"})
    period: int = dataclasses.field(
        default=20, metadata={"help": "steps between sequence starts (they overlap when period < length)"})
    burn_in: int = dataclasses.field(
        default=0, metadata={"help": "leading steps per sequence that only refresh the recurrent state (no loss)"})
    hidden_sizes: tuple[int, ...] = dataclasses.field(default=(64,), metadata={"help": "MLP torso widths"})
    lstm_size: int = dataclasses.field(default=64, metadata={"help": "LSTM units"})
    head_sizes: tuple[int, ...] = dataclasses.field(
        default=(), metadata={"help": "hidden widths of each dueling stream after the LSTM (R2D2: 512; none: linear)"})
    prev_action_reward: bool = dataclasses.field(
        default=True, metadata={"help": "the LSTM also reads the previous action (one-hot) and reward (R2D2)"})
    dueling: bool = dataclasses.field(default=True, metadata={"help": "dueling head: V(s) + A(s,a) - mean_a A(s,a)"})
    learning_rate: float = dataclasses.field(default=1e-3, metadata={"help": "Adam learning rate"})
    adam_epsilon: float = dataclasses.field(default=1e-3, metadata={"help": "Adam epsilon (R2D2: 1e-3)"})
    gamma: float = dataclasses.field(default=0.99, metadata={"help": "discount per step"})
    n_step: int = dataclasses.field(default=5, metadata={"help": "n of the n-step double-Q target"})
    rescaling_epsilon: float = dataclasses.field(default=1e-3, metadata={"help": "ε of the value rescaling h"})
    target_update_period: int = dataclasses.field(
        default=400, metadata={"help": "updates between copies of the online network into the target network"})
    priority_eta: float = dataclasses.field(
        default=0.9, metadata={"help": "sequence priority = η·max|δ| + (1-η)·mean|δ|"})
    priority_exponent: float = dataclasses.field(default=0.9, metadata={"help": "prioritized sampling exponent α"})
    importance_exponent: float = dataclasses.field(
        default=0.6, metadata={"help": "importance-sampling exponent β of the loss weights"})
    demo_ratio: float = dataclasses.field(
        default=1 / 256, metadata={"help": "share of every batch taken from the demonstrations (online mode)"})
    normalize_observations: bool = dataclasses.field(
        default=True, metadata={"help": "standardise non-image observations with the demonstrations' mean and std"})
    image_codes: int = dataclasses.field(
        default=0, metadata={"help": "uint8 images hold codes below this, one-hot encoded per channel (MiniGrid's "
                                     "object/colour/state grid: 11); 0: they are pixels, scaled to [0, 1]"})
    supervised_weight: float = dataclasses.field(
        default=0.0, metadata={"help": "weight of DQfD's large-margin loss on demonstration steps (0: R2D3's "
                                       "TD loss alone)"})
    margin: float = dataclasses.field(default=0.8, metadata={"help": "large-margin l(a_E, a) for a != a_E"})
    supervised_loss: str = dataclasses.field(
        default="margin", metadata={"help": "the supervised term on demonstration steps: DQfD's large margin, or "
                                            "cross-entropy of softmax(Q) against the demonstrated action",
                                    "choices": ("margin", "cross_entropy")})
    pretrain_steps: int = dataclasses.field(
        default=0, metadata={"help": "online: updates on demonstration sequences alone before the actors start"})
    prefetch: int = dataclasses.field(default=4, metadata={"help": "batches the input pipeline keeps ready"})
    epsilon: float = dataclasses.field(
        default=0.4, metadata={"help": "online: base ε of actor i's ε-greedy, ε_i = ε^(1 + α·i/(K-1))"})
    epsilon_alpha: float = dataclasses.field(default=7.0, metadata={"help": "online: α of the per-actor ε"})
    variable_update_period: int = dataclasses.field(
        default=100, metadata={"help": "online: actor steps between pulls of the learner's weights"})
    replay_size: int = dataclasses.field(default=100_000, metadata={"help": "online: sequences the agent replay keeps"})
    min_replay_size: int = dataclasses.field(
        default=50, metadata={"help": "online: agent sequences in replay before the learner starts"})
    samples_per_insert: float = dataclasses.field(
        default=16.0, metadata={"help": "online: sampled agent sequences per inserted one (rate limiter)"})

    def __post_init__(self):
        if min(self.batch_size, self.sequence_length, self.period, self.lstm_size, self.n_step) < 1:
            raise ValueError("batch_size, sequence_length, period, lstm_size and n_step must be >= 1")
        if self.burn_in < 0 or not self.hidden_sizes or self.learning_rate <= 0 or self.target_update_period < 1:
            raise ValueError("burn_in must be >= 0, hidden_sizes non-empty, learning_rate > 0, "
                             "target_update_period >= 1")
        if self.n_step >= self.sequence_length:
            raise ValueError(f"n_step ({self.n_step}) must be smaller than sequence_length ({self.sequence_length})")
        for name in ("gamma", "priority_eta", "demo_ratio", "epsilon", "importance_exponent"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if min(self.image_codes, self.supervised_weight, self.margin, self.pretrain_steps) < 0:
            raise ValueError("image_codes, supervised_weight, margin and pretrain_steps must be >= 0")
        if self.supervised_loss not in ("margin", "cross_entropy"):
            raise ValueError(f"supervised_loss must be margin or cross_entropy, got {self.supervised_loss!r}")
        if self.rescaling_epsilon <= 0 or self.priority_exponent < 0 or self.epsilon_alpha < 0:
            raise ValueError("rescaling_epsilon must be > 0, priority_exponent and epsilon_alpha >= 0")
        if min(self.variable_update_period, self.replay_size, self.min_replay_size) < 1 or self.samples_per_insert <= 0:
            raise ValueError("variable_update_period, replay_size, min_replay_size and samples_per_insert must be "
                             "positive")

    @property
    def core_state_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Shapes of the LSTM state (h, c) stored with every replay item (rlstore.replay.Layout)."""
        return ((self.lstm_size,), (self.lstm_size,))
