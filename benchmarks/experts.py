"""Scripted experts of the third-party tasks against a uniform random policy (mean episode return).

MinAtar Breakout, Freeway and SpaceInvaders (`-v1`, the suite's 2,500-step limit) and every
MiniGrid memory task, each played by `record --policy expert`'s expert and by the random
policy for the same number of episodes from the same env seed. The experts are what DQfD's
and R2D3's demonstrations come from, so their returns are the "demonstrator" figures the
learning results are measured against. Baseline: the random policy, measured in this run;
the ratio is expert / random mean return (random's is floored at 0.01).

Full: 20 episodes per task and policy (~8 min on this 2-core machine). --quick: 3 episodes,
MinAtar games cut at 300 steps, and the S9 and S13Random memory tasks only.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import choose_budget, log  # noqa: E402

import numpy as np  # noqa: E402

from rlstore import seeds  # noqa: E402
from rlstore.envs import make_environment, make_policy  # noqa: E402
from rlstore.envs.suites import MINATAR_MAX_STEPS  # noqa: E402
from rlstore.rollout import run_episodes  # noqa: E402

MINATAR = ("Breakout", "Freeway", "SpaceInvaders")
MEMORY = ("MemoryS7-v0", "MemoryS9-v0", "MemoryS11-v0", "MemoryS13-v0", "MemoryS13Random-v0", "MemoryS17Random-v0")
SEED = seeds.DEFAULT_EVALUATION_SEED  # never a demonstration's (rlstore.seeds)


def returns(spec: str, kind: str, episodes: int) -> list[float]:
    env = make_environment(spec, seed=SEED)
    policy = make_policy(kind, spec, env, seed=SEED)
    return [float(episode["steps"]["reward"].sum()) for episode in run_episodes(env, policy, episodes)]


def main() -> None:
    quick, budget = choose_budget(__doc__, {"episodes": 3, "max_steps": 300, "memory": ("MemoryS9-v0", "MemoryS13Random-v0")},
                                  {"episodes": 20, "max_steps": MINATAR_MAX_STEPS, "memory": MEMORY})
    specs = [f"gym:MinAtar/{game}-v1?max_steps={budget['max_steps']}" for game in MINATAR]
    specs += [f"gym:MiniGrid-{task}" for task in budget["memory"]]
    started = time.time()
    rows = []
    for spec in specs:
        row = {"env": spec}
        for kind in ("expert", "random"):
            values = returns(spec, kind, budget["episodes"])
            row[kind] = {"mean": round(float(np.mean(values)), 3), "std": round(float(np.std(values)), 3)}
            if spec.startswith("gym:MiniGrid"):
                row[kind]["success_rate"] = float(np.mean([value > 0 for value in values]))
        row["ratio_vs_baseline"] = round(row["expert"]["mean"] / max(row["random"]["mean"], 0.01), 1)
        log(f"{spec}: expert {row['expert']}, random {row['random']}")
        rows.append(row)
    print(json.dumps({"benchmark": "experts", "quick": quick, "episodes": budget["episodes"], "env_seed": SEED,
                      "baseline": "uniform random policy, same env seed and episodes, measured in this run",
                      "rows": rows, "seconds": round(time.time() - started, 1),
                      "load_average": [round(x, 2) for x in os.getloadavg()]}))


if __name__ == "__main__":
    main()
