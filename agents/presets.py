"""Per-suite presets: the hyper-parameters an online run (`rlstore run`) starts from, chosen by
its env spec, so a task family gets settings that work for it without a benchmark's private flags.

A run's config is the agent's defaults, then the preset its env spec selects (if any), then the
flags the user gave: a flag always wins, and `--preset none` turns presets off. `run.json`
records the preset's name under `online.preset` and the resulting config in full.

    memory    r2d3 on memory tasks (tmaze, fixed-size gym:MiniGrid-Memory*): demonstrations a quarter of
              every batch (the paper's 1/256 needs billions of steps to pay off), γ 0.9 (the
              reward comes a few dozen steps after the cue), 64 samples per inserted sequence
              and a target sync every 100 updates, so the learner replays demonstrations often
              enough within a budget of tens of thousands of env steps. No burn-in: burn-in
              steps carry no loss, and the cue is shown on an episode's first steps. Within
              such a budget the demonstrations must do most of the teaching, so DQfD's
              large-margin loss on demonstration steps (weight 1) and 1,500 updates on
              demonstrations alone before acting: the actors start from a policy that walks the
              demonstrated route and looks at the cue, instead of timing out at random. MiniGrid's
              view is a grid of codes below 11, one-hot encoded (`image_codes`), not pixels.
              The margin is 0.1, not DQfD's 0.8, and ε 0.1, not 0.4: a memory task's return is
              at most 1, worth ~0.37 at MiniGrid's junction in the value rescaling's units, and
              with a margin of 0.8 the pre-trained network puts every non-demonstrated action
              ~1.2 below the demonstrated one, so a wrong greedy turn whose value falls to 0 (a
              failed end) still beats the right one and the greedy choice can never flip; with
              0.1 it can. ε 0.1 keeps the agent's episodes near the expert's length (ε 0.4
              doubled to quadrupled them: 30k env steps gave 353-667 episodes, ε 0.1 gives
              ~2,000), and 96 samples per insert gives ~10k updates in 30k env steps.
              MiniGrid-MemoryS9, seed 0: success 0.65 -> 0.84 (benchmarks/r2d3_quality.py).
    memory_random
              r2d3 on gym:MiniGrid-Memory*Random* (hallways of random length): the memory preset,
              with sequences of 16 steps every 8 (not 40 every 20) and a 128-unit LSTM. The
              expert's episodes there are 6-14 steps on S13Random (tests/test_presets.py), so
              one window still holds each demonstration whole from its zero state, and an
              update runs 2.3x as fast as a 40-step one (96 vs 42 updates/s with 64 units).
              With the cue-twin demonstrations (rlstore.envs.cues), MiniGrid-MemoryS13Random
              at 100k env steps, seeds 0/1/2: 0.77 on seed 0 with the memory preset; 0.90 /
              0.78 / 0.67 with 256 units, at 41-46 min a run (an update is ~28 ms of LSTM
              arithmetic); 0.85 / 0.89 / 0.71 with 128 units, at 18-19 min a run alone on
              the machine, within the 20-minute row budget. S9 keeps the memory preset.
              S17Random's longest demonstrations (21 steps) need `--sequence-length 24 --period 12`.
    minatar   dqfd on gym:MinAtar/*: a 128-unit layer after the conv torso (MinAtar's DQN
              baseline, Young & Tian 2019), batches of 64 and a target sync every 500 updates,
              so updates keep pace with acting on a small machine. Demonstrations half of every
              batch and 15,000 pre-training updates (DQfD's defaults: a quarter, 1,000): after
              1,000 the greedy policy scored ~1 on Breakout when the actors started; after
              15,000 with half the batch from the expert it starts at ~15, and imitation keeps
              pulling it along while it learns from its own play. The tuning runs and the rows
              are in the README (Benchmarks, dqfd_quality.py).

Images (MiniGrid's 7x7 view, MinAtar's 10x10xn frames) go through the conv torso in every
config: that is the observation encoder's rule (rlstore.agents.specs.is_image), not a preset.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from rlstore.envs.spec import EnvSpec, parse_spec


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    agent: str
    applies: Callable[[EnvSpec], bool]
    overrides: Mapping[str, Any]


def _memory_task(spec: EnvSpec) -> bool:
    return spec.kind == "tmaze" or (spec.kind == "gym" and spec.gym_id.startswith("MiniGrid-Memory"))


def _memory_random_task(spec: EnvSpec) -> bool:
    return _memory_task(spec) and spec.kind == "gym" and "Random" in spec.gym_id


def _minatar(spec: EnvSpec) -> bool:
    return spec.kind == "gym" and spec.gym_id.startswith("MinAtar/")


_MEMORY = {"demo_ratio": 0.25, "gamma": 0.9, "samples_per_insert": 96.0, "target_update_period": 100,
           "supervised_weight": 1.0, "margin": 0.1, "epsilon": 0.1, "pretrain_steps": 1500, "image_codes": 11}

PRESETS: tuple[Preset, ...] = (  # the first one that applies is chosen
    Preset("memory_random", "r2d3", _memory_random_task, {**_MEMORY, "sequence_length": 16, "period": 8, "lstm_size": 128}),
    Preset("memory", "r2d3", _memory_task, _MEMORY),
    Preset("minatar", "dqfd", _minatar, {"hidden_sizes": (128,), "batch_size": 64, "target_update_period": 500,
                                           "demo_ratio": 0.5, "pretrain_steps": 15_000}),
)
NAMES = ("auto", "none")  # what `rlstore run --preset` accepts


def preset_for(agent: str, env: str) -> Preset | None:
    """The preset `agent` gets on env spec `env`, or None."""
    spec = parse_spec(env)
    return next((preset for preset in PRESETS if preset.agent == agent and preset.applies(spec)), None)


def starting_config(agent: str, env: str, given: Mapping[str, Any], choice: str = "auto") -> tuple[str | None, dict]:
    """(the preset's name or None, the config overrides of a run): the preset's values under
    `choice` "auto", replaced by every value the user `given`."""
    preset = preset_for(agent, env) if choice == "auto" else None
    return (preset.name if preset else None), {**(preset.overrides if preset else {}), **given}


def overrides_of(name: str | None) -> dict[str, Any]:
    """The values of the preset called `name` (none for None): a resumed run keeps the preset it
    started with, whatever its env spec would select now."""
    return dict(next((preset.overrides for preset in PRESETS if preset.name == name), {}))
