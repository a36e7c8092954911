"""Real Atari frames from the Arcade Learning Environment, preprocessed as DQN and Dopamine do.

`AtariEnv` is the environment behind `--env atari:<Game>` (rlstore.envs.spec): Dopamine's
preprocessing (`atari_lib.AtariPreprocessing`) on ALE v5. Each agent step repeats the action for
4 emulator frames and sums their rewards; the observed frame is the pixel-wise maximum of the
last two frames' grayscale screens (Atari sprites flicker between frames), resized to 84x84
(PIL's area-averaging BOX filter; Dopamine uses OpenCV's INTER_AREA). The agent sees the last
`stack` (default 4) of those frames as one uint8 [84, 84, stack] observation, zero-padded at
an episode's start (`rlstore.frames.push`: the store's stacking rule, so the single frames
an actor writes back rebuild exactly these stacks). An episode ends at game over (a
termination, discount 0; lives lost do not end it) or, as a truncation (discount 1), after
`max_steps` agent steps (Dopamine's 27,000, i.e. 108,000 frames). Sticky actions (Machado et
al. 2018; Dopamine's default): with probability 0.25 each emulator frame repeats the previous
action instead (`sticky=0` turns them off). Actions are the game's minimal action set, int32
as in Dopamine's replay buffers, so demonstrations ingested with `--format dqn_replay` match.

`random_play` is a random policy's frame stream (ALE's own 4-frame skip, no max-pooling),
which the tests' Dopamine checkpoints and the image benchmark are built from.

Needs `ale-py` (the `atari` extra), which ships the ROMs; it is imported only when called.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import dm_env
import numpy as np
from dm_env import specs

from rlstore import quiet
from rlstore.frames import push

FRAME_SHAPE = (84, 84)
FRAME_SKIP = 4
STICKY_PROBABILITY = 0.25
DEFAULT_MAX_STEPS = 27_000  # agent steps: Dopamine's max_steps_per_episode
DEFAULT_STACK = 4


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
    env = make_ale(game, sticky=True, frameskip=FRAME_SKIP)
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


def make_ale(game: str, sticky: bool, frameskip: int):
    """gymnasium's ALE v5 env of `game` with grayscale screens; ImportError names the package."""
    try:
        import ale_py
    except ImportError as error:
        raise ImportError(f"Atari needs ale-py (pip install 'rlstore[atari]'): {error}") from error
    import gymnasium as gym

    if quiet.silenced():  # else ALE prints its version banner on every env it makes
        ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
    gym.register_envs(ale_py)
    # ALE's own limit (v5: 108,000 frames) ends no episode before max_steps does.
    return gym.make(f"ALE/{game}-v5", obs_type="grayscale", frameskip=frameskip,
                    repeat_action_probability=STICKY_PROBABILITY if sticky else 0.0, max_episode_steps=None)


class AtariEnv(dm_env.Environment):
    """An Atari game as Dopamine's agents see it (see the module docstring)."""

    def __init__(self, game: str, seed: int | None = None, stack: int = DEFAULT_STACK, sticky: bool = True,
                 max_steps: int = DEFAULT_MAX_STEPS):
        self._env = make_ale(game, sticky, frameskip=1)
        self._seed, self._seeded = seed, False
        self._stack, self._max_steps = stack, max_steps
        self._screens = np.zeros((2, *self._env.observation_space.shape), np.uint8)
        self._state: np.ndarray | None = None
        self._steps = 0
        self._reset_next_step = True

    @property
    def frame_stack(self) -> int:
        return self._stack

    def reset(self) -> dm_env.TimeStep:
        if self._seeded:
            screen, _ = self._env.reset()
        else:
            screen, _ = self._env.reset(seed=self._seed)
            self._seeded = True
        self._screens[0] = screen
        self._screens[1] = 0
        self._steps, self._reset_next_step = 0, False
        self._state = push(None, self._frame(), self._stack)
        return dm_env.restart(self._state)

    def step(self, action) -> dm_env.TimeStep:
        if self._reset_next_step:
            return self.reset()
        reward, game_over, cut = 0.0, False, False
        for frame in range(FRAME_SKIP):
            screen, frame_reward, game_over, cut, _ = self._env.step(int(action))
            reward += float(frame_reward)
            if game_over or cut:
                break
            if frame >= FRAME_SKIP - 2:  # the last two frames are max-pooled
                self._screens[frame - (FRAME_SKIP - 2)] = screen
        self._steps += 1
        self._state = push(self._state, self._frame(), self._stack)
        if game_over:
            self._reset_next_step = True
            return dm_env.termination(reward, self._state)
        if cut or self._steps >= self._max_steps:
            self._reset_next_step = True
            return dm_env.truncation(reward, self._state)
        return dm_env.transition(reward, self._state)

    def _frame(self) -> np.ndarray:
        return _resize(np.maximum(self._screens[0], self._screens[1]))

    def observation_spec(self) -> specs.BoundedArray:
        return specs.BoundedArray((*FRAME_SHAPE, self._stack), np.uint8, 0, 255, name="observation")

    def action_spec(self) -> specs.DiscreteArray:
        return specs.DiscreteArray(int(self._env.action_space.n), dtype=np.int32, name="action")

    def close(self) -> None:
        self._env.close()
