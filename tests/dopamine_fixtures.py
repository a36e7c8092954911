"""Dopamine replay checkpoints written by Dopamine's own OutOfGraphReplayBuffer on real ALE frames.

One stream of random-policy Breakout steps (`rlstore.envs.atari.random_play`) is fed to two
buffers the way Dopamine's agents feed theirs (`add(..., episode_end=...)`):
  - checkpoint 0, capacity 512: nothing wraps; it starts with Dopamine's zero padding rows;
  - checkpoint 1, capacity 256: the buffer has wrapped, so its oldest episode lost its start;
    its `episode_end_indices` file is deleted, as older Dopamine never wrote one.
The stream is three episodes: the game played to its terminal, an episode cut after
CUT_LENGTH steps (`episode_end=True`, not terminal), and one still running at the save.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

STACK = 4
CUT_LENGTH = 40
RUNNING_LENGTH = 60
CAPACITIES = (512, 256)


@dataclass
class DopamineRun:
    directory: Path
    episodes: list[dict]  # per played episode: frames, actions, rewards, terminal
    buffers: list  # the OutOfGraphReplayBuffer of each checkpoint, for sampling comparisons


def played_episodes(seed: int = 0) -> list[dict]:
    from rlstore.envs.atari import random_play

    episodes, current = [], []
    steps = random_play("Breakout", 1000, seed=seed)
    for step in steps:  # the first game, to its terminal
        current.append(step)
        if step.terminal:
            break
    episodes.append(current)
    for length in (CUT_LENGTH, RUNNING_LENGTH):
        episodes.append([next(steps) for _ in range(length)])
    steps.close()
    return [{"frames": np.stack([s.frame for s in e]), "actions": np.array([s.action for s in e], np.int32),
             "rewards": np.array([s.reward for s in e], np.float32), "terminal": e[-1].terminal} for e in episodes]


def write_checkpoints(directory: Path, episodes: list[dict]) -> DopamineRun:
    from dopamine.tf.replay_memory.circular_replay_buffer import OutOfGraphReplayBuffer

    directory.mkdir(parents=True, exist_ok=True)
    buffers = []
    for checkpoint, capacity in enumerate(CAPACITIES):
        buffer = OutOfGraphReplayBuffer((84, 84), STACK, capacity, 32, update_horizon=1)
        for number, episode in enumerate(episodes):
            last = len(episode["actions"]) - 1
            for t in range(last + 1):
                terminal = bool(episode["terminal"] and t == last)
                # the cut episode ends by episode_end; the running one is still open at the save
                buffer.add(episode["frames"][t], episode["actions"][t], episode["rewards"][t], terminal,
                           episode_end=terminal or (number == 1 and t == last))
        buffer.save(str(directory), checkpoint)
        buffers.append(buffer)
    (directory / "episode_end_indices_ckpt.1.gz").unlink()
    return DopamineRun(directory, episodes, buffers)
