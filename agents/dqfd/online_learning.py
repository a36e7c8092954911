"""DQfD's online learner: prioritized replay from two Reverb tables, in two phases.

1. Pre-training: `pretrain_steps` updates on demonstrations alone (batches of the demo table).
2. Online: every batch mixes demonstrations and the agent's replay at `demo_ratio`
   (rlstore.agents.dqfd.replay). Demonstrations stay available for the whole run.

Each update (in graph, inside the same `tf.function` loop as the offline learner's):
- importance-sampling weights per row, w = (N · P(i))^-β with its own table's size N and
  sampling probability P(i), normalised by the batch's largest weight (Schaul et al. 2016);
  β is annealed linearly from β0 (`importance_exponent`) to 1 over the run's expected updates;
- J(Q) with those weights (rlstore.agents.dqfd.losses, unchanged from the offline learner);
- new priorities |δ| + ε, plus ε_d on demonstration rows (Hester et al. 2018, section 3.1),
  sent to each row's table with Reverb's TF client right after the step.

The online update is traced (and its sampling stream opened) in `ready()`, before the learner
publishes the weights that let actors start: tracing took 10-30 s on a loaded machine, and
the rate limiter would hold every actor for that long once the replay table's slack is used up.

When a table's rate limiter blocks sampling for rlstore.agents.prioritized.SAMPLE_TIMEOUT_MS (the
actors are behind, or have stopped), `run` returns early with what it did; the next call
starts a new sampling stream.
"""
from __future__ import annotations

from typing import Any, Callable

import reverb
import tensorflow as tf

from rlstore.agents.dqfd.config import DQfDConfig
from rlstore.agents.dqfd.learning import DQfDLearner
from rlstore.agents.dqfd.losses import METRICS
from rlstore.agents.dqfd.networks import DQfDNetworks
from rlstore.agents.dqfd.replay import DEMO_TABLE, REPLAY_TABLE, BatchSplit
from rlstore.agents.prioritized import importance_weights
from rlstore.agents.update_loop import mean_metrics

ONLINE_METRICS = METRICS + ("demo_fraction", "beta", "priority_mean")


class OnlineDQfDLearner(DQfDLearner):
    """The OnlineLearner of rlstore.agents.online for DQfD (see the module docstring)."""

    def __init__(self, networks: DQfDNetworks, config: DQfDConfig, replay_address: str,
                 batches: Callable[[BatchSplit], tf.data.Dataset], pretrain_steps: int, anneal_updates: int):
        super().__init__(networks, None, config)
        self._pretrain_steps = pretrain_steps
        self._anneal = float(max(anneal_updates, 1))
        self._batches = batches
        self._splits = {"pretrain": BatchSplit(config.batch_size, 0), "online": BatchSplit.of(config)}
        self._iterators: dict[str, Any] = {}
        self._client = reverb.TFClient(replay_address)

    def variables(self) -> list[tf.Variable]:
        return list(self._networks.online.variables)

    def ready(self) -> bool:
        if int(self.steps.numpy()) < self._pretrain_steps:
            return False
        self._stream("online")  # traced before acting starts (see the module docstring)
        return True

    def run(self, num_updates: int) -> dict[str, float]:
        step = int(self.steps.numpy())
        phase = "pretrain" if step < self._pretrain_steps else "online"
        if phase == "pretrain":
            num_updates = min(num_updates, self._pretrain_steps - step)
        else:
            self._iterators.pop("pretrain", None)  # stops its sampling stream
        split = self._splits[phase]
        try:
            metrics = self._run_prioritized(self._stream(phase), tf.constant(num_updates, tf.int64),
                                            split.demo_rows, split.replay_rows)
        except tf.errors.OutOfRangeError:  # a table's rate limiter held sampling back too long
            del self._iterators[phase]
            return {}
        return {name: float(value) for name, value in metrics.items()}

    def _stream(self, phase: str) -> Any:
        """The phase's sampling stream, opened (and the update traced for it) on first use."""
        if phase not in self._iterators:
            split = self._splits[phase]
            iterator = iter(self._batches(split))
            self._run_prioritized.get_concrete_function(iterator, tf.TensorSpec([], tf.int64), split.demo_rows,
                                                        split.replay_rows)
            self._iterators[phase] = iterator
        return self._iterators[phase]

    @tf.function
    def _run_prioritized(self, iterator: Any, num_updates: tf.Tensor, demo_rows: int, replay_rows: int):
        return mean_metrics(lambda: self._prioritized_update(next(iterator), demo_rows, replay_rows), num_updates,
                            ONLINE_METRICS)

    def _prioritized_update(self, sample: dict[str, Any], demo_rows: int, replay_rows: int) -> dict[str, tf.Tensor]:
        config = self._config
        progress = tf.minimum(tf.cast(self.steps, tf.float32) / self._anneal, 1.0)
        beta = config.importance_exponent + (1.0 - config.importance_exponent) * progress
        batch = {**sample, "weight": importance_weights(sample["probability"], sample["table_size"], beta)}
        output = self._apply(batch)
        is_demo = tf.cast(batch["is_demo"], tf.float32)
        priorities = tf.abs(output.td_error) + config.priority_epsilon + config.demo_priority_bonus * is_demo
        priorities = tf.cast(priorities, tf.float64)
        if demo_rows:
            self._client.update_priorities(DEMO_TABLE, batch["key"][:demo_rows], priorities[:demo_rows])
        if replay_rows:
            self._client.update_priorities(REPLAY_TABLE, batch["key"][demo_rows:], priorities[demo_rows:])
        return {**output.metrics, "demo_fraction": tf.reduce_mean(is_demo), "beta": beta,
                "priority_mean": tf.reduce_mean(tf.cast(priorities, tf.float32))}
