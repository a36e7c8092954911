"""Parsing of environment spec strings, the single format behind every `--env` flag.

One string names an environment and all of its parameters, so a dataset's provenance
can be recorded (and the environment rebuilt) from that string alone. Valid forms:

    catch                          Catch, 10 rows x 5 columns
    catch:rows=R,columns=C         Catch with a custom board (either key may be omitted)
    deep_sea:size=N[,mapping_seed=K]   Deep Sea on an N x N grid
    tmaze:length=N[,mapping_seed=K]    T-maze with a corridor of N cells
    gym:<id>                       any registered gymnasium env, its default time limit
    gym:<id>?max_steps=N           ... with the time limit set to N steps
    atari:<Game>                   an Atari game (ALE) as Dopamine's agents see it: 84x84 grayscale
                                   frames, 4-frame skip, max-pooled, stacks of 4, sticky actions
    atari:<Game>?stack=K&sticky=0&max_steps=N   ... K frames a stack, no sticky actions, a time
                                   limit of N agent steps (default 27,000); any of them alone

Every form also takes `step_ms=N` (N >= 0): each step then takes at least N milliseconds,
a stand-in for a slow simulator (rlstore.envs.step_cost). `catch:step_ms=5`,
`deep_sea:size=10,step_ms=5`, `gym:CartPole-v1?max_steps=200&step_ms=5`. It changes the
task's speed, not the task: demonstrations recorded without it serve a run with it.

Third-party suites come in through `gym:` too (rlstore.envs.suites registers them on first use):
MinAtar (`gym:MinAtar/Breakout-v1`, Asterix, Freeway, Seaquest, SpaceInvaders; 10x10xn boolean
frames) and MiniGrid (`gym:MiniGrid-MemoryS9-v0`, ... `gym:MiniGrid-MemoryS17Random-v0`; dict
observations: a 7x7x3 partial view, the direction and the mission text).

An `atari:` game's observations are frame stacks (rlstore.envs.atari); online actors write
back one frame per step with the stack size in the schema, as a `dqn_replay` ingest stores
them, so stacks read back equal what the agent saw.

Parameters are explicit where they define the task's difficulty (deep_sea size, tmaze
length) so two datasets can never silently disagree about it. For the same reason the hidden
layout of deep_sea and tmaze (which action moves right or advances in each cell) comes from the
spec's `mapping_seed` (default 0, as bsuite's `mapping_seed`), not from the environment seed:
the environment seed only draws episodes (tmaze's cues), so demonstrations, training and
evaluation can use disjoint seeds on one task (rlstore.seeds).
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

from rlstore.errors import RlstoreError

VALID_FORMS = (
    "catch",
    "catch:rows=R,columns=C",
    "deep_sea:size=N[,mapping_seed=K]",
    "tmaze:length=N[,mapping_seed=K]",
    "gym:<id>",
    "gym:<id>?max_steps=N",
    "atari:<Game>[?stack=K&sticky=0|1&max_steps=N]",
    "any of these with step_ms=N (catch:step_ms=5, gym:<id>?step_ms=5)",
)
GYM_EXAMPLES = ("gym:CartPole-v1", "gym:MinAtar/Breakout-v1", "gym:MiniGrid-MemoryS9-v0", "atari:Pong")

# For each built-in task: parameter name -> default (None means the key is required).
_BUILTIN_PARAMS: dict[str, dict[str, int | None]] = {
    "catch": {"rows": 10, "columns": 5},
    "deep_sea": {"size": None, "mapping_seed": 0},
    "tmaze": {"length": None, "mapping_seed": 0},
}
STEP_COST = "step_ms"  # every kind takes it; see rlstore.envs.step_cost
_MINIMUM = {"mapping_seed": 0, STEP_COST: 0, "sticky": 0}  # every other parameter is at least 1
_ATARI_PARAMS = {"stack": 4, "sticky": 1, "max_steps": 27_000}  # rlstore.envs.atari's defaults


class EnvSpecError(RlstoreError, ValueError):
    """A spec string that does not name a known environment, or an env that cannot be built.

    Its message is one line that names the problem and lists the valid forms, so the CLI
    prints it as it prints every other user error."""

    def __init__(self, spec: str, problem: str):
        super().__init__(f"bad environment spec {spec!r}: {problem}; valid forms: {', '.join(VALID_FORMS)} "
                         f"(e.g. {', '.join(GYM_EXAMPLES)})")


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """A parsed spec: `kind` is a built-in task name or "gym"; `params` has defaults filled;
    `step_ms` is the step cost (0: none), kept apart from the task's own parameters; `game` is
    an atari spec's game."""

    kind: str
    params: Mapping[str, int]
    gym_id: str | None = None
    step_ms: int = 0
    game: str | None = None

    @property
    def frame_stack(self) -> int:
        """How many frames each observation stacks (`rlstore.frames`); 1: observations are whole."""
        return self.params["stack"] if self.kind == "atari" else 1


def parse_spec(spec: str) -> EnvSpec:
    """Parses a spec string, raising EnvSpecError with the valid forms on any mistake."""
    text = spec.strip()
    kind, sep, rest = text.partition(":")
    if kind == "gym":
        return _parse_gym(spec, rest)
    if kind == "atari":
        return _parse_atari(spec, rest)
    if kind not in _BUILTIN_PARAMS:
        raise EnvSpecError(spec, f"unknown environment {kind!r}")
    if sep and not rest:
        raise EnvSpecError(spec, "empty parameter list after ':'")
    given = _parse_params(spec, rest.split(",") if rest else [])
    step_ms = given.pop(STEP_COST, 0)
    schema = _BUILTIN_PARAMS[kind]
    unknown = sorted(set(given) - set(schema))
    if unknown:
        raise EnvSpecError(spec, f"unknown parameter(s) {unknown} for {kind}; expected {sorted([*schema, STEP_COST])}")
    params = {}
    for name, default in schema.items():
        value = given.get(name, default)
        if value is None:
            raise EnvSpecError(spec, f"{kind} requires {name}=N")
        params[name] = value
    return EnvSpec(kind=kind, params=params, step_ms=step_ms)


def _parse_gym(spec: str, rest: str) -> EnvSpec:
    gym_id, sep, query = rest.partition("?")
    if not gym_id:
        raise EnvSpecError(spec, "missing gymnasium id after 'gym:'")
    if sep and not query:
        raise EnvSpecError(spec, "empty parameter list after '?'")
    params = _parse_params(spec, query.split("&") if query else [])
    step_ms = params.pop(STEP_COST, 0)
    unknown = sorted(set(params) - {"max_steps"})
    if unknown:
        raise EnvSpecError(spec, f"unknown parameter(s) {unknown} for gym; expected ['max_steps', '{STEP_COST}']")
    return EnvSpec(kind="gym", params=params, gym_id=gym_id, step_ms=step_ms)


def _parse_atari(spec: str, rest: str) -> EnvSpec:
    game, sep, query = rest.partition("?")
    if not game.isidentifier():
        raise EnvSpecError(spec, "expected an ALE game name after 'atari:', e.g. atari:Pong or atari:Breakout")
    if sep and not query:
        raise EnvSpecError(spec, "empty parameter list after '?'")
    params = _parse_params(spec, query.split("&") if query else [])
    step_ms = params.pop(STEP_COST, 0)
    unknown = sorted(set(params) - set(_ATARI_PARAMS))
    if unknown:
        raise EnvSpecError(spec, f"unknown parameter(s) {unknown} for atari; expected {sorted([*_ATARI_PARAMS, STEP_COST])}")
    if params.get("sticky", 1) not in (0, 1):
        raise EnvSpecError(spec, f"sticky must be 0 or 1, got {params['sticky']}")
    return EnvSpec(kind="atari", params={**_ATARI_PARAMS, **params}, step_ms=step_ms, game=game)


def without_step_cost(spec: str) -> str:
    """The same spec without its `step_ms` (itself if it has none): the task at its own speed.

    Evaluations inside an online run use it: they measure the policy, and paying a simulator's
    step cost for them would stall the actor that runs them."""
    parsed = parse_spec(spec)
    if not parsed.step_ms:
        return spec
    text = spec.strip()
    query = parsed.kind in ("gym", "atari")  # `<kind>:<id>?a=1&b=2`, the others `<kind>:a=1,b=2`
    head, separator = (text.partition("?")[0], "?") if query else (text.partition(":")[0], ":")
    items = text.partition(separator)[2].split("&" if query else ",")
    kept = [item for item in items if item.partition("=")[0].strip() != STEP_COST]
    return f"{head}{separator}{('&' if query else ',').join(kept)}" if kept else head


def _parse_params(spec: str, items: list[str]) -> dict[str, int]:
    """Parses `key=N` items; every parameter is an integer, positive unless _MINIMUM says otherwise."""
    params: dict[str, int] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise EnvSpecError(spec, f"expected key=value, got {item!r}")
        if key in params:
            raise EnvSpecError(spec, f"parameter {key!r} given twice")
        try:
            number = int(value)
        except ValueError:
            raise EnvSpecError(spec, f"{key} must be an integer, got {value!r}") from None
        minimum = _MINIMUM.get(key, 1)
        if number < minimum:
            raise EnvSpecError(spec, f"{key} must be >= {minimum}, got {number}")
        params[key] = number
    return params
