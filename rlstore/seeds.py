"""The seed scheme: which environment seeds each use of a task plays, kept disjoint.

An agent judged on the episodes it learned from, or on the episodes its hyper-parameters were
chosen on, looks better than it is. On a memory task a seed fixes the sequence of hidden cues,
so a policy that copies demonstrations recorded with seed 0 can score well on seed 0 and at
chance anywhere else. Every environment seed therefore falls in one of four ranges by use:

    DEMONSTRATIONS   0 .. 999         `record --seed` (default 0), the benchmarks' demos
    ACTING           1,000 .. 4,999   online actors' environments: 1,000 + 100·env_seed + actor
    TUNING           5,000 .. 9,999   evaluations during training (`train --eval-env`, a run's
                                      periodic evaluation), the ones hyper-parameters are chosen on
    EVALUATION       10,000 ..        the reported numbers: `eval` (default --seed 10000), a run's
                                      final evaluation, the benchmarks' rows

A task's hidden layout (deep_sea's action mapping, the T-maze's corridor) is part of its env
spec (`mapping_seed`), not of these seeds, so all four ranges play the same task.
"""
from __future__ import annotations

DEMONSTRATIONS = range(0, 1_000)
ACTING = range(1_000, 5_000)
TUNING = range(5_000, 10_000)
EVALUATION = range(10_000, 2**31)

DEFAULT_DEMONSTRATION_SEED = DEMONSTRATIONS.start
DEFAULT_EVALUATION_SEED = EVALUATION.start
_ACTORS_PER_SEED = 100


def acting(env_seed: int, actor: int) -> int:
    """The environment seed of online actor `actor` in a run with `--env-seed env_seed`."""
    return _within(ACTING, ACTING.start + _ACTORS_PER_SEED * env_seed + actor, "env seed and actor")


def tuning(run_seed: int) -> int:
    """The environment seed of the evaluations made during a run (seed `run_seed`)."""
    return _within(TUNING, TUNING.start + run_seed, "seed")


def evaluation(run_seed: int) -> int:
    """The environment seed of a run's reported, final evaluation."""
    return _within(EVALUATION, EVALUATION.start + run_seed, "seed")


def use_of(seed: int) -> str:
    """Which use a seed belongs to: 'demonstrations', 'acting', 'tuning' or 'evaluation'."""
    for name, seeds in (("demonstrations", DEMONSTRATIONS), ("acting", ACTING), ("tuning", TUNING),
                        ("evaluation", EVALUATION)):
        if seed in seeds:
            return name
    raise ValueError(f"seed {seed} is negative or too large")


def _within(seeds: range, seed: int, what: str) -> int:
    if seed not in seeds:
        raise ValueError(f"{what} too large for the seed scheme: {seed} falls outside {seeds.start}..{seeds.stop - 1}")
    return seed
