"""`rlstore run AGENT`: creates the online run directory and runs its parts (see rlstore.agents.online).

With `role="all"` the calling process is the supervisor: it writes run.json (the demonstration
version, the config, the specs, the run's options), starts the replay server, the learner and
K actors as children on loopback ports, waits for the actors to play the env-step budget (or,
with `stop_at_return`, for an evaluation that reaches that return; rlstore.agents.online.stopping), then
stops the actors, the learner (final checkpoint) and the replay server, records every write-back version
in run.json, evaluates the final checkpoint and draws the learning curve. On a run directory
that already holds a run it continues that run, but only when asked (`resume`; see
rlstore.agents.online.resuming). With another role it runs that one part in this process (on
a host of its own; run.json is created by the first part started and read by the others, so
they need the same run directory, e.g. over NFS).
"""
from __future__ import annotations

import dataclasses
import json
import signal
import socket
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from rlstore import seeds
from rlstore.agents import presets, registry, run_manifest
from rlstore.agents.errors import AgentError
from rlstore.agents.evaluation import evaluate, make_env
from rlstore.agents.online import resuming
from rlstore.agents.online.context import RunContext, check_demonstrations, specs_from_environment
from rlstore.agents.online.resuming import SupervisorLock
from rlstore.agents.runs import RunDirectory
from rlstore.envs import without_step_cost
from rlstore.exposure import require_expose, single_host_notice
from rlstore.store import Store

ROLES = ("all", "replay", "learner", "actor")
_SERVERS = {"replay": "the replay server", "learner": "the learner's variable server"}
CURVE = "learning_curve.png"


@dataclasses.dataclass(frozen=True)
class OnlineOptions:
    """The run's options (the agent's hyper-parameters are its config, passed separately)."""

    env: str
    env_steps: int
    out: str | Path
    demos: str | None = None
    actors: int = 1
    write_back: str | None = None
    commit_every: int = 50
    compact_every: int | None = None  # actor 0's write-back compacts after every K-th commit
    seed: int = 0
    env_seed: int = 0
    role: str = "all"
    index: int = 0
    replay_address: str | None = None
    learner_address: str | None = None
    eval_episodes: int = 10
    eval_every_env_steps: int | None = None  # None: a tenth of the budget; 0: no evaluation while running
    final_eval_episodes: int = 50
    expose: bool = False  # the replay and learner roles start only with it (see rlstore.exposure)
    preset: str = "auto"  # "auto": the config starts from the env spec's preset (rlstore.agents.presets); "none"
    resume: bool = False  # continue the stopped run in `out` (rlstore.agents.online.resuming)
    checkpoint_every: float = 600.0  # seconds between checkpoints of the learner and replay (0: updates only / at the end)
    stop_at_return: float | None = None  # stop once an evaluation reaches this mean return (rlstore.agents.online.stopping)

    def __post_init__(self):
        if self.env_steps < 1 or self.actors < 1 or self.commit_every < 1 or self.eval_episodes < 1 \
                or (self.compact_every is not None and self.compact_every < 1):
            raise AgentError("env_steps, actors, commit_every, compact_every and eval_episodes must be >= 1")
        for name in ("seed", "env_seed"):
            if getattr(self, name) not in seeds.RUN_SEEDS:
                raise AgentError(f"{name} must lie in 0..{seeds.RUN_SEEDS.stop - 1}, got {getattr(self, name)}")
        if self.preset not in presets.NAMES:
            raise AgentError(f"preset must be one of {', '.join(presets.NAMES)}, got {self.preset!r}")
        if self.stop_at_return is not None and (self.role != "all" or not self.eval_every):
            raise AgentError("stop_at_return needs --role all and evaluations while running (eval_every > 0)")
        if self.checkpoint_every < 0:
            raise AgentError(f"checkpoint_every must be >= 0 seconds, got {self.checkpoint_every}")
        if self.role not in ROLES:
            raise AgentError(f"role must be one of {', '.join(ROLES)}, got {self.role!r}")
        if self.role != "all" and not (self.replay_address and self.learner_address):
            raise AgentError(f"--role {self.role} needs --replay-address and --learner-address")
        if self.role == "actor" and not 0 <= self.index < self.actors:
            raise AgentError(f"--index must be in [0, {self.actors}) for {self.actors} actors")
        if self.role in _SERVERS:
            what, address = _SERVERS[self.role], getattr(self, f"{self.role}_address")
            require_expose(self.expose, f"{what} (--role {self.role})", _port(address))

    @property
    def eval_every(self) -> int:
        return max(self.env_steps // 10, 1) if self.eval_every_env_steps is None else self.eval_every_env_steps


def run(agent: str, store: Store, options: OnlineOptions, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Runs (a part of) an online run; with role "all" returns its summary (see the module docstring)."""
    from rlstore.agents.online.processes import stop_event

    entry = registry.get(agent)
    factory = entry.online_factory()
    run_dir = RunDirectory.at(options.out)
    if options.role == "all":
        lock = SupervisorLock(run_dir)  # refuses a run that a live supervisor runs
        try:
            if run_dir.exists():
                manifest = _resumed_manifest(agent, entry, store, options, dict(config or {}), run_dir)
            else:
                manifest = _new_manifest(agent, entry, store, options, dict(config or {}))
                run_manifest.start_session(manifest, 0, None)
            factory(RunContext.from_manifest(manifest, run_dir))  # the agent refuses bad options now, not in a child
            return _supervise(run_dir, manifest, options)
        finally:
            lock.release()
    if not run_dir.exists():
        manifest = _new_manifest(agent, entry, store, options, dict(config or {}))
        factory(RunContext.from_manifest(manifest, run_dir))
        run_manifest.write(run_dir.manifest_path, manifest)
    elif run_manifest.read(run_dir.manifest_path).get("agent") != agent:
        raise AgentError(f"{run_dir.path} holds a run of another agent")
    run_role(run_dir.path, options.role, options.index, options.replay_address, options.learner_address,
             stop_event())
    return {"run_dir": str(run_dir.path), "role": options.role}


def run_role(out: str | Path, role: str, index: int, replay_address: str, learner_address: str, stop) -> None:
    """Runs one part of the run in `out` in this process until it is done or `stop` is set."""
    context = RunContext.load(out)
    agent = registry.get(context.agent).online_factory()(context)
    if role == "replay":
        from rlstore.agents.online.replay import serve_replay

        serve_replay(agent, context, _port(replay_address), stop)
    elif role == "learner":
        from rlstore.agents.online.learning import run_learner

        run_learner(agent, context, replay_address, _port(learner_address), stop)
    else:
        from rlstore.agents.online.acting import run_actor

        run_actor(agent, context, index, replay_address, learner_address, stop)


def _supervise(run: RunDirectory, manifest: dict[str, Any], options: OnlineOptions) -> dict[str, Any]:
    from rlstore.agents.online.acting import summary_path
    from rlstore.agents.online.processes import ProcessGroup
    from rlstore.agents.online.stopping import ReturnReached

    started = time.perf_counter()
    addresses = {"replay": f"localhost:{_free_port()}", "learner": f"localhost:{_free_port()}"}
    print(f"note: {single_host_notice({role: _port(address) for role, address in addresses.items()})}",
          file=sys.stderr, flush=True)
    manifest["online"]["addresses"] = addresses
    session = manifest["sessions"][-1]
    if len(manifest["sessions"]) > 1:
        print(f"note: resuming {run.path} (session {len(manifest['sessions']) - 1}) at "
              f"{sum(session['actor_start_steps'])} of {options.env_steps} env steps, learner step "
              f"{session['start_step']}", file=sys.stderr, flush=True)
    session["env_steps"] = options.env_steps
    run_manifest.write(run.manifest_path, manifest)
    context = RunContext.from_manifest(manifest, run)
    actors = [f"actor-{index}" for index in range(options.actors)]
    reached = ReturnReached(run.logs / "eval.csv", options.stop_at_return) if options.stop_at_return is not None else None

    def argv(role: str, index: int = 0) -> list[str]:
        return ["-m", "rlstore.agents.online.main", "--out", str(run.path), "--role", role, "--index", str(index),
                "--replay-address", addresses["replay"], "--learner-address", addresses["learner"]]

    previous = _sigterm_as_interrupt()
    try:
        with ProcessGroup(run.logs) as group:
            group.start("replay", argv("replay"))
            group.start("learner", argv("learner"))
            for index, name in enumerate(actors):
                group.start(name, argv("actor", index))
            try:
                if not group.wait(actors, until=reached):
                    print(f"note: an evaluation reached a return of {reached.row['return_mean']:.3f} "
                          f"(>= {options.stop_at_return}) at {int(reached.row['step'])} env steps: stopping the run",
                          file=sys.stderr, flush=True)
            finally:
                # Each part stops while the parts it talks to still run: actors first (an insert the
                # rate limiter holds back is released by the learner's sampling), then the learner,
                # then the replay server. Stopping Reverb under a client could leave it retrying.
                group.stop(order=(*actors, "learner", "replay"))
            for name in ("learner", "replay"):
                if group.returncode(name) != 0:
                    raise AgentError(f"process {name!r} did not stop cleanly (status {group.returncode(name)}; "
                                     f"log: {group.log(name)})")
    finally:  # also on Ctrl-C or a failed part: what was committed is recorded
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        _record_actors(manifest, [summary_path(run, index) for index in range(options.actors)], context.store)
        run_manifest.end_session(session, _checkpoint_step(run))
        run_manifest.write(run.manifest_path, manifest)

    final = _final_evaluation(run, context, options.final_eval_episodes)
    manifest["online"]["final_evaluation"] = final
    stopped_at = reached.row if reached is not None else None
    if stopped_at is not None:
        session["stopped_at_return"] = stopped_at
    run_manifest.write(run.manifest_path, manifest)
    curve = plot_run_curve(run.path)
    online = manifest["online"]
    return {"run_dir": str(run.path), "agent": manifest["agent"], "env": options.env, "demos": online["demos"],
            "demo_ratio": online["demo_ratio"], "preset": online.get("preset"), "env_steps": online["env_steps_done"],
            "learner_steps": session["end_step"], "write_back": online["write_back"], "final_evaluation": final,
            "learning_curve": str(curve) if curve else None, "seconds": round(time.perf_counter() - started, 1),
            "stopped_at_return": stopped_at}


def plot_run_curve(run_dir: str | Path) -> Path | None:
    """Draws `<run>/learning_curve.png` (evaluation return against env steps) from logs/eval.csv."""
    from rlstore.agents.logging import read_csv
    from rlstore.report_plot import plot_curves

    run = RunDirectory.at(run_dir)
    rows = read_csv(run.logs / "eval.csv")
    if not rows:
        return None
    manifest = run_manifest.read(run.manifest_path)
    online = manifest["online"]
    label = f"{manifest['agent']}, demo ratio {online['demo_ratio']}" if online["demos"] else manifest["agent"]
    out = run.path / CURVE
    plot_curves([{"title": f"{manifest['agent']} online on {online['env']}", "xlabel": "environment steps",
                  "series": {label: rows}}], out)
    return out


def _new_manifest(agent: str, entry: registry.AgentEntry, store: Store, options: OnlineOptions,
                  overrides: dict[str, Any]) -> dict[str, Any]:
    preset, overrides = presets.starting_config(agent, options.env, overrides, options.preset)
    config = entry.make_config(overrides)
    specs = specs_from_environment(make_env(options.env, options.env_seed))
    demos = None
    if options.demos:
        demos = str(store.resolve(options.demos))
        check_demonstrations(specs, store, demos, options.env)
    dataset = run_manifest.dataset_entry(store, demos) if demos else {"ref": None}
    manifest = run_manifest.new_manifest(agent, dataset, dataclasses.asdict(config), options.seed, specs.to_json())
    manifest["online"] = {
        "run_id": f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}",
        "store": store.location, "env": options.env, "env_seed": options.env_seed, "env_steps": options.env_steps,
        "actors": options.actors, "demos": demos, "demo_ratio": getattr(config, "demo_ratio", None),
        "preset": preset,
        "write_back": {"dataset": options.write_back, "commit_every": options.commit_every,
                       "compact_every": options.compact_every, "versions": [], "segments": [], "actors": [],
                       # versions up to this one are not the run's (its segments are looked for above it)
                       "base_version": (store.versions(options.write_back) or [0])[-1] if options.write_back else 0},
        "checkpoint_every": options.checkpoint_every,  # seconds
        "eval_every": options.eval_every, "eval_episodes": options.eval_episodes, "env_steps_done": 0,
    }
    return manifest


def _resumed_manifest(agent: str, entry: registry.AgentEntry, store: Store, options: OnlineOptions,
                      overrides: dict[str, Any], run: RunDirectory) -> dict[str, Any]:
    """The run manifest of the stopped run in `run`, with a new session that continues it; AgentError
    unless --resume was given and the options describe the same run (rlstore.agents.online.resuming)."""
    from rlstore.agents.online.acting import summary_path

    manifest = run_manifest.read(run.manifest_path)
    online = manifest.get("online")
    if online is None:
        raise AgentError(f"{run.path} holds a `train` run, not an online run: choose a new --out")
    segments = resuming.committed_segments(store, online["write_back"]["dataset"], online["run_id"],
                                           online["write_back"].get("base_version", 0))
    starts = resuming.actor_start_steps(segments, [summary_path(run, i) for i in range(online["actors"])],
                                        online["actors"], bool(online["write_back"]["dataset"]))
    if sum(starts) >= options.env_steps and resuming.is_finished(manifest):
        raise AgentError(f"{run.path} holds a finished run ({sum(starts)} of {options.env_steps} env steps): "
                         "choose a new --out, or pass --resume with a larger --env-steps to extend it")
    if not options.resume:
        raise AgentError(f"{run.path} already holds a {manifest['agent']} run on {online['env']} that stopped at "
                         f"{sum(starts)} of {online['env_steps']} env steps: pass --resume to continue it, "
                         "or choose a new --out")
    overrides = {**presets.overrides_of(online.get("preset")), **overrides}
    config = json.loads(json.dumps(dataclasses.asdict(entry.make_config(overrides))))
    resuming.check_same_run(manifest, agent, store, {
        "env": options.env, "env_seed": options.env_seed, "demos": options.demos, "write_back": options.write_back,
        "actors": options.actors, "seed": options.seed, "config": config})
    online.update(env_steps=options.env_steps, final_evaluation=None, env_steps_done=sum(starts))
    online["write_back"]["segments"] = segments
    session = run_manifest.start_session(manifest, _checkpoint_step(run), None)
    session["actor_start_steps"] = starts
    return manifest


def _record_actors(manifest: dict[str, Any], paths: list[Path], store: Store) -> None:
    """What the actors did, into the manifest: env steps from their summaries, and every segment
    the run committed (all sessions) read back from the store's lineage."""
    summaries = [json.loads(path.read_text()) for path in paths if path.is_file()]
    online = manifest["online"]
    online["env_steps_done"] = sum(summary["env_steps"] for summary in summaries)
    write_back = online["write_back"]
    write_back["actors"] = [summary["write_back"] for summary in summaries if summary["write_back"]]
    write_back["segments"] = resuming.committed_segments(store, write_back["dataset"], online["run_id"],
                                                         write_back.get("base_version", 0))
    write_back["versions"] = sorted({segment["version"] for segment in write_back["segments"]})


def _checkpoint_step(run: RunDirectory) -> int:
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(str(run.checkpoints))
    return int(latest.rsplit("-", 1)[1]) if latest else 0


def _final_evaluation(run: RunDirectory, context: RunContext, episodes: int) -> dict[str, Any]:
    """The final checkpoint on `episodes` fresh episodes, also appended to logs/eval.csv."""
    from rlstore.agents.logging import RunLogger
    from rlstore.agents.online.acting import eval_row
    from rlstore.agents.runs import load_trained

    trained = load_trained(run.path)
    seed = seeds.evaluation(context.env_seed)
    result = evaluate(trained.make_actor, without_step_cost(context.env), episodes, seed=seed, specs=trained.specs)
    row = eval_row(result, trained.step)
    env_steps = run_manifest.read(run.manifest_path)["online"]["env_steps_done"]
    # A logger "resumed" past every row keeps them all and appends the final one.
    logger = RunLogger(run.logs, total_steps=0, initial_step=2**62, progress=False)
    logger.write("eval", env_steps, row)
    logger.close()
    success = {"success_rate": result["success_rate"]} if "success_rate" in result else {}
    return {"env": context.env, "seed": seed, "seed_use": "evaluation", "episodes": episodes, "env_steps": env_steps,
            **row, **success}


def _sigterm_as_interrupt():
    """Makes SIGTERM (a service manager's stop) stop the run like Ctrl-C; returns the old handler.

    Ctrl-C itself is made to interrupt too, whatever this process inherited: a parent that
    ignored or blocked SIGINT when it started us (both survive exec, and Python then leaves
    SIGINT ignored) would otherwise leave a supervisor that Ctrl-C cannot stop."""
    if threading.current_thread() is not threading.main_thread():
        return None
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def interrupt(*_):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def _port(address: str) -> int:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise AgentError(f"an address is HOST:PORT, got {address!r}")
    return int(port)
