"""A scripted expert for MiniGrid's memory tasks (every size, fixed or random hallway).

It reads the game state, as the deep_sea and tmaze experts read their env's hidden mapping:
the grid, the agent's pose and which end of the split matches the start room's object
(`success_pos`). It behaves as a person with a memory would, so that its demonstrations teach
memory: first it walks to where it sees the cue object in the start room (the agent starts
facing away from it, often in the hallway), then to the cell beside the matching object.
Each step it finds a shortest turn/forward path by breadth-first search over (x, y, direction),
never through the wrong end (`failure_pos` ends the episode with 0), and takes the path's
first action.
"""
from __future__ import annotations

from collections import deque

import dm_env
import numpy as np

from rlstore.envs.gym_adapter import GymAdapter

LEFT, RIGHT, FORWARD = 0, 1, 2
_DIRECTIONS = ((1, 0), (0, 1), (-1, 0), (0, -1))  # MiniGrid's DIR_TO_VEC: right, down, left, up


def is_memory_task(gym_id: str) -> bool:
    return gym_id.startswith("MiniGrid-Memory")


Pose = tuple[int, int, int]  # x, y, direction


class MemoryExpert:
    """Looks at the cue object first, then walks the shortest path beside the matching object."""

    def __init__(self, env: GymAdapter):
        self._game = env.gym_env.unwrapped
        self._seen_cue = False
        self._cue_poses: set[Pose] = set()

    def __call__(self, timestep: dm_env.TimeStep) -> np.int64:
        game = self._game
        pose = (int(game.agent_pos[0]), int(game.agent_pos[1]), int(game.agent_dir))
        cue = (1, game.height // 2 - 1)  # where MemoryEnv puts the start room's object
        if timestep.first():
            self._seen_cue = False
            self._cue_poses = _poses_seeing(game, cue)
        self._seen_cue = self._seen_cue or pose in self._cue_poses
        success, failure = tuple(game.success_pos), tuple(game.failure_pos)
        if self._seen_cue:
            reached = lambda p: p[:2] == success  # noqa: E731
        else:
            reached = self._cue_poses.__contains__
        return np.int64(_first_action(game.grid, pose, reached, failure))


def _poses_seeing(game, cell: tuple[int, int]) -> set[Pose]:
    """Every pose from which the agent's partial view shows `cell` (MiniGrid's own visibility).

    The agent's pose is set to each candidate in turn and restored afterwards: MiniGrid computes
    what the agent sees from its current pose only."""
    saved = game.agent_pos, game.agent_dir
    poses = set()
    try:
        for x in range(game.width):
            for y in range(game.height):
                if not _passable(game.grid, x, y):
                    continue
                for direction in range(4):
                    game.agent_pos, game.agent_dir = np.array((x, y)), direction
                    relative = game.relative_coords(*cell)
                    if relative is not None and game.gen_obs_grid()[1][relative]:
                        poses.add((x, y, direction))
    finally:
        game.agent_pos, game.agent_dir = saved
    return poses


def _first_action(grid, start: Pose, reached, avoid: tuple[int, int]) -> int:
    """The first action of a shortest path from `start` to a pose where `reached(pose)` (FORWARD if none)."""
    first: dict[Pose, int | None] = {start: None}
    queue = deque([start])
    while queue:
        pose = queue.popleft()
        x, y, direction = pose
        if reached(pose):
            return first[pose] if first[pose] is not None else FORWARD
        dx, dy = _DIRECTIONS[direction]
        moves = [(LEFT, (x, y, (direction - 1) % 4)), (RIGHT, (x, y, (direction + 1) % 4))]
        ahead = (x + dx, y + dy)
        if ahead != avoid and _passable(grid, *ahead):
            moves.append((FORWARD, (*ahead, direction)))
        for action, nxt in moves:
            if nxt not in first:
                first[nxt] = action if first[pose] is None else first[pose]
                queue.append(nxt)
    return FORWARD


def _passable(grid, x: int, y: int) -> bool:
    if not (0 <= x < grid.width and 0 <= y < grid.height):
        return False
    cell = grid.get(x, y)
    return cell is None or cell.can_overlap()
