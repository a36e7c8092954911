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

Any run seed or `--env-seed` in 0 .. 2**31 - 1 works. The ranges above hold the seeds of small
ones (env seeds below 40 for actors, run seeds below 5,000 for tuning); larger ones go to a
wide range of their use in 2**31 .. 2**32 - 1, wrapping around inside it. Every seed stays
below 2**32, the largest some envs take (MinAtar seeds numpy's RandomState), and the uses stay
disjoint; two far-apart run seeds may share episodes, never two uses.
"""
from __future__ import annotations

DEMONSTRATIONS = range(0, 1_000)
ACTING = range(1_000, 5_000)
TUNING = range(5_000, 10_000)
EVALUATION = range(10_000, 2**31)
WIDE_ACTING = range(2**31, 2**31 + 2**30)
WIDE_TUNING = range(WIDE_ACTING.stop, WIDE_ACTING.stop + 2**29)
WIDE_EVALUATION = range(WIDE_TUNING.stop, 2**32)
RUN_SEEDS = range(0, 2**31)  # what --seed and --env-seed accept
_USES = {"demonstrations": (DEMONSTRATIONS,), "acting": (ACTING, WIDE_ACTING), "tuning": (TUNING, WIDE_TUNING),
         "evaluation": (EVALUATION, WIDE_EVALUATION)}

DEFAULT_DEMONSTRATION_SEED = DEMONSTRATIONS.start
DEFAULT_EVALUATION_SEED = EVALUATION.start
_ACTORS_PER_SEED = 100


def acting(env_seed: int, actor: int) -> int:
    """The environment seed of online actor `actor` (0 .. 99) in a run with `--env-seed env_seed`."""
    if not 0 <= actor < _ACTORS_PER_SEED:
        raise ValueError(f"actor index {actor} outside 0..{_ACTORS_PER_SEED - 1}")
    return _place(ACTING, WIDE_ACTING, _ACTORS_PER_SEED * _run_seed(env_seed, "env seed") + actor)


def tuning(run_seed: int) -> int:
    """The environment seed of the evaluations made during a run (seed `run_seed`)."""
    return _place(TUNING, WIDE_TUNING, _run_seed(run_seed, "seed"))


def evaluation(run_seed: int) -> int:
    """The environment seed of a run's reported, final evaluation."""
    return _place(EVALUATION, WIDE_EVALUATION, _run_seed(run_seed, "seed"))


def use_of(seed: int) -> str:
    """Which use a seed belongs to: 'demonstrations', 'acting', 'tuning' or 'evaluation'."""
    for name, ranges in _USES.items():
        if any(seed in seeds for seeds in ranges):
            return name
    raise ValueError(f"seed {seed} is negative or too large (seeds lie in 0..{2**32 - 1})")


def _run_seed(seed: int, what: str) -> int:
    if seed not in RUN_SEEDS:
        raise ValueError(f"{what} must lie in 0..{RUN_SEEDS.stop - 1}, got {seed}")
    return seed


def _place(small: range, wide: range, offset: int) -> int:
    """small.start + offset while it fits in `small`, else a place in `wide` (wrapping around)."""
    if offset < len(small):
        return small.start + offset
    return wide.start + (offset - len(small)) % len(wide)
