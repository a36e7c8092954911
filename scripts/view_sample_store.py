"""Publishes a small image dataset ('bouncing': a ball on 48x48 RGB frames) into the store given
on the command line, through the store API, for `scripts/check_view.sh` to look at."""
from __future__ import annotations

import sys

import numpy as np

from rlstore.episode import make_episode
from rlstore.publishing import publish_episodes
from rlstore.store import Store


def bouncing(length: int, seed: int):
    rng = np.random.default_rng(seed)
    position, velocity = rng.uniform(8, 40, 2), rng.uniform(-3, 3, 2)
    frames = np.zeros((length, 48, 48, 3), np.uint8)
    frames[..., 2] = 40
    states = np.zeros((length, 4), np.float32)
    for t in range(length):
        position += velocity
        for axis in range(2):
            if not 4 <= position[axis] <= 43:
                velocity[axis] = -velocity[axis]
                position[axis] = np.clip(position[axis], 4, 43)
        y, x = np.ogrid[:48, :48]
        frames[t][(y - position[0]) ** 2 + (x - position[1]) ** 2 <= 16] = (250, 200, 40)
        states[t] = (*position, *velocity)
    action = rng.integers(0, 3, length)
    reward = (np.abs(states[:, 2]) + np.abs(states[:, 3])).astype(np.float32) / 4
    discount = np.ones(length, np.float32)
    return make_episode({"pixels": frames, "state": states}, action, reward, discount, is_terminal=False,
                        episode_metadata={"episode_id": np.int64(seed)})


def main(root: str) -> None:
    store = Store(root)
    episodes = [bouncing(40 + 5 * i, seed=i) for i in range(6)]
    publish_episodes(store, "bouncing", episodes, {"pipeline": "scripts/view_sample_store.py"})


if __name__ == "__main__":
    from rlstore.quiet import silence

    silence()
    main(sys.argv[1])
