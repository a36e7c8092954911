"""Weights from the learner to the actors, over Reverb (Acme's variable source/client split).

The learner process hosts a small Reverb server with one table, "variables", that holds only
the latest published weights (FIFO, max_size 1) together with the learner step they come from.
Actors sample it: sampling a one-item table always returns the newest item, so no one needs a
queue or a lock, and an actor on another host needs only the address.

`VariableClient.update()` is called once per actor step. Every `update_period` calls it starts
a fetch in a background thread and, once that has arrived, assigns the weights between two
steps; acting never waits for the network after the first `wait()`.
"""
from __future__ import annotations

import concurrent.futures
import time
from typing import Sequence

import numpy as np

import reverb
import tensorflow as tf

from rlstore.agents.errors import AgentError

TABLE = "variables"
_POLL_SECONDS = 0.1


def _signature(variables: Sequence[tf.Variable]) -> dict:
    return {"step": tf.TensorSpec((), tf.int64),
            "variables": tuple(tf.TensorSpec(v.shape, v.dtype) for v in variables)}


class VariableServer:
    """Publishes `variables` (in the learner) for actors to fetch from `address`."""

    def __init__(self, variables: Sequence[tf.Variable], port: int | None = None):
        self._variables = list(variables)
        table = reverb.Table(TABLE, sampler=reverb.selectors.Uniform(), remover=reverb.selectors.Fifo(), max_size=1,
                             rate_limiter=reverb.rate_limiters.MinSize(1), signature=_signature(self._variables))
        try:
            self._server = reverb.Server([table], port=port)
        except (ValueError, RuntimeError) as error:
            raise AgentError(f"cannot start the learner's variable server on port {port}: {error}") from None
        self.port: int = self._server.port
        self.address = f"localhost:{self.port}"
        self._client = reverb.Client(self.address)

    def publish(self, step: int) -> None:
        """Makes the variables' current values, taken at learner step `step`, the ones actors get."""
        data = {"step": np.int64(step), "variables": tuple(v.numpy() for v in self._variables)}
        self._client.insert(data, priorities={TABLE: 1.0})

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


class VariableClient:
    """Keeps an actor's copy of `variables` close to the learner's (see the module docstring)."""

    def __init__(self, address: str, variables: Sequence[tf.Variable], update_period: int):
        if update_period < 1:
            raise AgentError(f"update_period must be >= 1, got {update_period}")
        self._variables = list(variables)
        self._period = update_period
        self._client = reverb.Client(address)
        self._calls = 0
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="variable-client")
        self._pending: concurrent.futures.Future | None = None
        self.step = -1  # the learner step of the weights in use; -1 before the first fetch

    def wait(self, timeout: float | None = None, should_stop=lambda: False) -> bool:
        """Blocks until the learner has published once and those weights are in use. Returns
        False if `timeout` seconds passed or `should_stop()` became true first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not should_stop():
            if self._published():
                self._assign(self._fetch())
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(_POLL_SECONDS)
        return False

    def update(self) -> None:
        """Called once per actor step; never blocks."""
        if self._pending is not None and self._pending.done():
            pending, self._pending = self._pending, None
            self._assign(pending.result())
        self._calls += 1
        if self._calls >= self._period and self._pending is None:
            self._calls = 0
            self._pending = self._executor.submit(self._fetch)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _published(self) -> bool:
        try:
            return self._client.server_info(timeout=1)[TABLE].current_size > 0
        except (reverb.errors.DeadlineExceededError, RuntimeError, KeyError):
            return False  # the learner is not up yet

    def _fetch(self) -> tuple[int, tuple[np.ndarray, ...]]:
        sample = next(self._client.sample(TABLE, 1, emit_timesteps=False, unpack_as_table_signature=True))
        # `insert` wrote one timestep; a sampled trajectory has a time axis of length 1.
        return int(sample.data["step"][0]), tuple(value[0] for value in sample.data["variables"])

    def _assign(self, fetched: tuple[int, tuple[np.ndarray, ...]]) -> None:
        step, values = fetched
        if len(values) != len(self._variables):
            raise AgentError(f"the learner publishes {len(values)} variables, this actor has {len(self._variables)}")
        for variable, value in zip(self._variables, values):
            variable.assign(value)
        self.step = step
