"""Real Atari frames from the Arcade Learning Environment, preprocessed as DQN and Dopamine do.

ALE v5 with 4-frame skip (rewards summed over the skipped frames), grayscale observations
resized to 84x84 (PIL's area-averaging BOX filter, Dopamine uses OpenCV's INTER_AREA), a
uniformly random policy. Tests build Dopamine replay checkpoints from these frames and the
image benchmark builds its datasets from them. Needs `ale-py` (the test extra), which ships
the ROMs; it is imported only when called.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

FRAME_SHAPE = (84, 84)


@dataclass
class AtariStep:
    """One agent step: the frame seen, the action taken on it, the reward and whether the game ended."""

    frame: np.ndarray
    action: int
    reward: float
    terminal: bool
    episode_end: bool  # terminal, or cut by max_episode_steps


def _resize(frame: np.ndarray) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(frame).resize(FRAME_SHAPE[::-1], Image.BOX), dtype=np.uint8)


def random_play(game: str = "Pong", num_steps: int = 1000, seed: int = 0,
                max_episode_steps: int | None = None) -> Iterator[AtariStep]:
    """`num_steps` agent steps of a random policy on `game`, episode after episode."""
    import ale_py
    import gymnasium as gym

    gym.register_envs(ale_py)
    env = gym.make(f"ALE/{game}-v5", obs_type="grayscale", frameskip=4, repeat_action_probability=0.25)
    rng = np.random.default_rng(seed)
    try:
        observation, _ = env.reset(seed=seed)
        in_episode = 0
        for _ in range(num_steps):
            action = int(rng.integers(env.action_space.n))
            next_observation, reward, terminated, truncated, _ = env.step(action)
            in_episode += 1
            cut = truncated or (max_episode_steps is not None and in_episode >= max_episode_steps)
            yield AtariStep(_resize(observation), action, float(reward), bool(terminated), bool(terminated or cut))
            if terminated or cut:
                observation, _ = env.reset()
                in_episode = 0
            else:
                observation = next_observation
    finally:
        env.close()
