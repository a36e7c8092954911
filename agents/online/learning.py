"""The learner role: updates in short chunks, weights published after each, until told to stop.

Chunks are short (CHUNK updates) so actors get fresh weights often and a stop request is seen
within a chunk; the agent's learner returns early when its replay has nothing to sample (the
rate limiter holds it back because actors have stopped inserting), so the loop never hangs in
Reverb. Metrics are averaged over LOG_EVERY updates into logs/train.csv (and TensorBoard);
until the actors start (pre-training on demonstrations: minutes with the `minatar` preset's
15,000 updates) a progress line reaches the terminal every PRETRAIN_REPORT_EVERY updates, so a
run that acts no env steps yet is not mistaken for a hung one;
checkpoints are written every CHECKPOINT_EVERY updates or the run's `checkpoint_every` seconds,
whichever comes first, and always when the role stops, so the
run directory serves `rlstore eval` / `export` like a `train` run's. A learner that finds a
checkpoint in the run directory (a resumed run) restores it first and continues its step count.

Once the final checkpoint is written the learner object is torn down in a background thread
that nobody waits for: closing tf.data's Reverb sampling streams took 13-18 s on a loaded
machine (2 cores, load 6), long enough for the supervisor's stop timeout to SIGKILL a learner
that had finished everything durable. The entry points end with os._exit, which ends that
thread too; a caller that carries on gets the teardown done in the background.
"""
from __future__ import annotations

import gc
import sys
import threading
import time

from rlstore.agents.checkpointing import Checkpointer
from rlstore.agents.logging import RunLogger
from rlstore.agents.online.context import RunContext
from rlstore.agents.online.variables import VariableServer

CHUNK = 25
LOG_EVERY = 250
PRETRAIN_REPORT_EVERY = 2500
CHECKPOINT_EVERY = 2000


def run_learner(agent, context: RunContext, replay_address: str, port: int, stop: threading.Event) -> int:
    """Trains until `stop` is set; returns the final learner step (checkpointed)."""
    owned = [agent.make_learner(replay_address)]  # the only reference, so the teardown can be moved
    try:
        return _train(owned[0], context, port, stop)
    finally:
        threading.Thread(target=_release, args=(owned,), name="learner-teardown", daemon=True).start()


def _release(owned: list) -> None:
    owned.clear()
    gc.collect()  # the learner's tf.function and Sonnet modules form reference cycles


def _train(learner, context: RunContext, port: int, stop: threading.Event) -> int:
    checkpointer = Checkpointer(context.run.checkpoints, learner.checkpoint_objects())
    if checkpointer.restore():  # a resumed run (rlstore.agents.online.resuming): weights, optimizer, step
        print(f"[learner] resumed from {checkpointer.latest}", flush=True)
    server = VariableServer(learner.variables(), port)
    step = saved = logged = int(learner.steps.numpy())
    logger = RunLogger(context.run.logs, total_steps=0, initial_step=step, progress=False, description="learner")
    sums: dict[str, float] = {}
    published = None
    started = saved_at = time.perf_counter()
    every = context.checkpoint_every or float("inf")  # seconds (a resume restores the latest checkpoint)
    try:
        while not stop.is_set():
            if learner.ready() and step != published:  # before updating: actors may be waiting for weights
                if published is None:
                    print(f"[learner] step {step}: publishing weights, actors start "
                          f"({time.perf_counter() - started:.1f} s after start)", flush=True)
                server.publish(step)
                published = step
            try:
                metrics = learner.run(CHUNK)
            except Exception:  # a stop request takes the replay server down with the rest
                if stop.is_set():
                    break
                raise
            done = int(learner.steps.numpy()) - step
            step += done
            for name, value in metrics.items():
                sums[name] = sums.get(name, 0.0) + value * done
            if step - logged >= LOG_EVERY:
                row = logger.train_progress(step, {name: total / (step - logged) for name, total in sums.items()})
                line = (f"[learner] step {step}: loss {row.get('loss', float('nan')):.4f}, "
                        f"{row['updates_per_s']:.0f} updates/s")
                print(line, file=sys.stderr, flush=True)
                if published is None and step // PRETRAIN_REPORT_EVERY > logged // PRETRAIN_REPORT_EVERY:
                    print(f"{line} (pre-training on demonstrations; the actors start after it)", flush=True)
                sums, logged = {}, step
            if step > saved and (step - saved >= CHECKPOINT_EVERY or time.perf_counter() - saved_at >= every):
                checkpointer.save(step)
                saved, saved_at = step, time.perf_counter()
    finally:
        step = int(learner.steps.numpy())  # a chunk cut short by a stop may have done some updates
        if step > saved or checkpointer.latest is None:
            checkpointer.save(step)
        server.close()
        logger.close()
    print(f"[learner] stopped at step {step}; checkpoint in {context.run.checkpoints}", flush=True)
    return step
