"""Third-party environment suites reached through `gym:<id>`: what each needs before
gymnasium can make its envs, and the defaults the suite's tasks get.

gymnasium 1.x no longer discovers plug-in packages by itself: MiniGrid registers its envs when
`minigrid` is imported, MinAtar only when `minatar.gym.register_envs()` is called. Importing a
suite happens on first use of one of its ids, so `import rlstore.envs` stays cheap and a
machine without the suite installed can still use every other env.

MinAtar's games have no time limit of their own except Freeway's 2,500 steps, and a good
Breakout player never loses: the suite's default limit is Freeway's, applied to every game as a
truncation (discount 1), so demonstrations and evaluations end. `?max_steps=N` overrides it.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Callable


@dataclasses.dataclass(frozen=True)
class Suite:
    """A family of gymnasium ids sharing a prefix, the package that registers them, and defaults."""

    name: str
    prefix: str
    package: str  # pip requirement, named in the error when the import fails
    register: Callable[[], None]
    default_max_steps: int | None = None
    examples: tuple[str, ...] = ()


def _register_minatar() -> None:
    import gymnasium as gym

    if "MinAtar/Breakout-v1" not in gym.registry:
        importlib.import_module("minatar.gym").register_envs()


def _register_minigrid() -> None:
    importlib.import_module("minigrid")


MINATAR_GAMES = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")
MINATAR_MAX_STEPS = 2500

SUITES: tuple[Suite, ...] = (
    Suite("MinAtar", "MinAtar/", "minatar==1.0.15", _register_minatar, MINATAR_MAX_STEPS,
          tuple(f"MinAtar/{game}-v1" for game in MINATAR_GAMES)),
    Suite("MiniGrid", "MiniGrid-", "minigrid==3.2.0", _register_minigrid, None,
          ("MiniGrid-MemoryS7-v0", "MiniGrid-MemoryS9-v0", "MiniGrid-MemoryS11-v0", "MiniGrid-MemoryS13-v0",
           "MiniGrid-MemoryS13Random-v0", "MiniGrid-MemoryS17Random-v0")),
)


def suite_of(gym_id: str) -> Suite | None:
    """The suite a gymnasium id belongs to, or None for gymnasium's own envs."""
    return next((suite for suite in SUITES if gym_id.startswith(suite.prefix)), None)


def prepare(gym_id: str) -> Suite | None:
    """Registers the suite of `gym_id` with gymnasium (importing its package); returns the suite.

    Raises ImportError naming the package to install when the suite is missing."""
    suite = suite_of(gym_id)
    if suite is not None:
        try:
            suite.register()
        except ImportError as error:
            raise ImportError(f"{suite.name} is not installed (pip install {suite.package}): {error}") from error
    return suite
