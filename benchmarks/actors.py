"""Acting and learning at scale: R2D3 online with 1 and 2 actor processes, and with the replay
server started separately by `rlstore serve`.

Workload: `rlstore run r2d3` on tmaze:length=10 with 10 expert demonstration episodes (demo ratio
0.25), the quality benchmark's config (rate limiter: 64 sampled sequences per inserted one, so
acting and learning are held to each other, as in a real run), no evaluation while running.
Configurations, each measured in this run:
  1 actor     `run --actors 1` (replay, learner and actor as processes on loopback): the baseline
  2 actors    `run --actors 2`
  serve       the replay server started by `rlstore serve` (demonstrations plus an empty
              `agent_sequences` table, `--core-state-shapes 64,64`), then `run --role learner` and
              `run --role actor` as separate commands pointed at its address, as on separate hosts
Rates exclude start-up: env steps/s = all actors' env steps / the longest actor's acting time
(from its first weights to its last episode; `acting_seconds` in logs/actor-<i>.json), learner
updates/s = updates / that same time. The machine has 2 cores for every process, so more actors
compete with the learner for them (the JSON carries the load average).

Prints one JSON line on stdout; progress goes to stderr. `--quick` uses a smaller budget.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import choose_budget, log  # noqa: E402

from rlstore.quiet import silence  # noqa: E402

silence()  # before TensorFlow

ROOT = Path(__file__).resolve().parent.parent
RLSTORE = [sys.executable, "-m", "rlstore"]
ENV = "tmaze:length=10"
CONFIG = {"demo_ratio": 0.25, "gamma": 0.9, "samples_per_insert": 64.0, "target_update_period": 100}
FULL = {"env_steps": 20_000}
QUICK = {"env_steps": 1_000}
STOP_SECONDS = 30


def rates(run_dir: Path) -> dict:
    """Env steps/s and learner updates/s of a finished run directory, start-up excluded."""
    import tensorflow as tf

    from rlstore.agents.runs import RunDirectory

    run = RunDirectory.at(run_dir)
    actors = [json.loads(path.read_text()) for path in sorted(run.logs.glob("actor-*.json"))]
    seconds = max(actor["acting_seconds"] for actor in actors)
    env_steps = sum(actor["env_steps"] for actor in actors)
    latest = tf.train.latest_checkpoint(str(run.checkpoints))
    updates = int(latest.rsplit("-", 1)[1]) if latest else 0
    return {"actors": len(actors), "env_steps": env_steps, "updates": updates, "acting_seconds": seconds,
            "env_steps_per_s": env_steps / seconds, "updates_per_s": updates / seconds}


def supervised(store, demos: str, root: Path, actors: int, budget: dict) -> dict:
    from rlstore.agents.online.run import OnlineOptions, run

    out = root / f"actors-{actors}"
    options = OnlineOptions(env=ENV, env_steps=budget["env_steps"], out=out, demos=demos, actors=actors,
                            eval_every_env_steps=0, final_eval_episodes=5)
    started = time.perf_counter()
    run("r2d3", store, options, CONFIG)
    return {**rates(out), "wall_seconds": round(time.perf_counter() - started, 1)}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def _wait_for(predicate, what: str, timeout: float, processes: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        for process in processes:
            if process.poll() not in (None, 0):
                raise RuntimeError(f"{what}: a process exited with status {process.returncode} ({process.args})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _stop(processes: list[subprocess.Popen]) -> None:
    """Each in turn, in the order given: SIGINT (a clean stop), then SIGKILL if still alive after
    STOP_SECONDS. In turn, because a learner whose replay server stops under it blocks in
    Reverb's sampling and never sees its own stop request."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def separate_server(store_root: Path, demos: str, root: Path, budget: dict) -> dict:
    """`rlstore serve` in its own process, then the learner and one actor as separate commands."""
    from rlstore.agents.r2d3.config import R2D3Config

    config = R2D3Config(**CONFIG)
    replay_port, learner_port = _free_port(), _free_port()
    addresses = ["--replay-address", f"localhost:{replay_port}", "--learner-address", f"localhost:{learner_port}"]
    out = root / "serve"
    serve = [*RLSTORE, "--store", str(store_root), "serve", demos, "--port", str(replay_port), "--expose",
             "--tables", "sequences", "--demo", "--prioritized", "--priority-exponent", str(config.priority_exponent),
             "--sequence-length", str(config.sequence_length), "--period", str(config.period),
             "--burn-in", str(config.burn_in),
             "--core-state-shapes", ",".join("x".join(map(str, shape)) for shape in config.core_state_shapes),
             "--online-table", "agent_sequences", "--online-max-size", str(config.replay_size),
             "--online-min-size", str(config.min_replay_size),
             "--online-samples-per-insert", str(config.samples_per_insert),
             "--online-error-buffer", str(2.0 * config.samples_per_insert * config.batch_size)]
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in CONFIG.items()]
    part = [*RLSTORE, "--store", str(store_root), "run", "r2d3", "--env", ENV, "--demos", demos,
            "--env-steps", str(budget["env_steps"]), "--out", str(out), "--eval-every", "0", *addresses, *flags]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    logs = root / "serve-logs"
    logs.mkdir()
    processes: list[subprocess.Popen] = []

    def start(name: str, argv: list[str]) -> subprocess.Popen:
        with open(logs / f"{name}.log", "wb") as sink:
            process = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        processes.append(process)
        return process

    started = time.perf_counter()
    try:
        start("serve", serve)
        _wait_for(lambda: b"serving " in (logs / "serve.log").read_bytes(), "rlstore serve", 120, processes)
        start("learner", [*part, "--role", "learner", "--expose"])
        _wait_for(lambda: (out / "run.json").is_file(), "the learner's run.json", 120, processes)
        actor = start("actor", [*part, "--role", "actor", "--index", "0"])
        _wait_for(lambda: actor.poll() == 0, "the actor to finish its budget", 1800, processes)
    finally:
        _stop(processes[::-1])  # learner (final checkpoint), then the server
    statuses = [process.returncode for process in processes]
    return {**rates(out), "wall_seconds": round(time.perf_counter() - started, 1),
            "exit_statuses": dict(zip(("serve", "learner", "actor"), statuses))}


def main() -> None:
    quick, budget = choose_budget(__doc__, QUICK, FULL)
    from rlstore.datasets.demonstrations import ingest_expert_demos
    from rlstore.store import Store

    with tempfile.TemporaryDirectory(prefix="r2d3_actors_") as tmp:
        root = Path(tmp)
        store = Store(root / "store")
        manifest = ingest_expert_demos(store, "tmaze_expert", ENV, 10, root / "logs", seed=0)
        demos = f"{manifest.name}@{manifest.version}"
        results = {}
        for actors in (1, 2):
            log(f"run r2d3 --actors {actors}, {budget['env_steps']} env steps")
            results[f"actors_{actors}"] = supervised(store, demos, root, actors, budget)
            log(f"  {results[f'actors_{actors}']}")
        log("rlstore serve + run --role learner + run --role actor")
        results["serve_separate"] = separate_server(root / "store", demos, root, budget)
        log(f"  {results['serve_separate']}")
    base = results["actors_1"]
    print(json.dumps({
        "benchmark": "actors", "quick": quick, "env": ENV, "env_steps_per_run": budget["env_steps"],
        "config": CONFIG, "baseline": "actors_1", **results,
        "env_steps_ratio_2_actors": results["actors_2"]["env_steps_per_s"] / base["env_steps_per_s"],
        "updates_ratio_2_actors": results["actors_2"]["updates_per_s"] / base["updates_per_s"],
        "env_steps_ratio_serve_separate": results["serve_separate"]["env_steps_per_s"] / base["env_steps_per_s"],
        "cores": os.cpu_count(), "load_average": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
