"""Write-back overhead: environment steps/s of `catch` with the writer against the same loop without.

Workload: the built-in Catch (10 x 5 board, 9 steps per episode) played by its scripted expert,
the cheapest realistic acting loop, so it shows the writer's cost at its most visible. Measured
in the same run, in turns, each the best of `rounds`:
  * baseline: `reset` / `policy` / `step`, nothing else;
  * store:    the same loop plus `observe_first` / `observe` of a `WriteBack` into a store
              dataset, committing a version every 1,000 episodes (9,000 steps, a fraction of a
              second of acting: Catch's episodes are tiny, and a commit costs tens of ms);
  * reverb:   the same, plus 1-step transitions into an in-process Reverb server's table.
Writer rates include `close()`, so every episode is durable (and every item confirmed) when the
clock stops; the writer's start-up (its worker process imports TensorFlow) happens before the
clock starts and is reported separately. Overhead = 1 - writer rate / baseline rate; the target
is at most 15%. The machine's 2 cores are shared: the worker process needs the second one.

Wall-clock rates suffer from whatever else the machine runs (the JSON carries the load average),
so the CPU each part spends per environment step is reported too (`cpu_us_per_step`): the
acting thread (the environment, the policy and the writer's `observe`/flushes), the worker
process (after its start-up) and, with Reverb, the server's threads in this process. They say
where the time goes, independently of the load.

Runnable alone (`--quick` < 60 s) and as `measure(quick)` merged by `benchmarks/serve.py`.
Prints one JSON line on stdout; progress goes to stderr.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import log, quick_parser  # noqa: E402

from rlstore.quiet import silence  # noqa: E402

silence()  # before TensorFlow

from rlstore.envs import make_environment, make_policy  # noqa: E402
from rlstore.store import Store  # noqa: E402
from rlstore.writeback import WriteBack, drive  # noqa: E402

ENV, POLICY, COMMIT_EVERY = "catch", "expert", 1_000
TARGET_OVERHEAD = 0.15
FULL = {"episodes": 10_000, "rounds": 3}
QUICK = {"episodes": 3_000, "rounds": 1}


def bare_loop(episodes: int) -> dict[str, float]:
    """Steps/s of the acting loop alone, and the acting thread's CPU µs per step."""
    environment = make_environment(ENV, seed=0)
    policy = make_policy(POLICY, ENV, environment, seed=0)
    steps = 0
    started, cpu = time.perf_counter(), time.thread_time()
    for _ in range(episodes):
        timestep = environment.reset()
        while not timestep.last():
            action = policy(timestep)
            timestep = environment.step(action)
            steps += 1
    return {"rate": steps / (time.perf_counter() - started), "acting": (time.thread_time() - cpu) / steps * 1e6}


def writer_loop(episodes: int, make_writer: Callable[[], WriteBack]) -> dict[str, float]:
    """Steps/s of the same loop through a writer, including its close; the writer's start-up
    (s); CPU µs per step of the acting thread, of the worker process and of the rest of this
    process (the Reverb server's threads)."""
    environment = make_environment(ENV, seed=0)
    policy = make_policy(POLICY, ENV, environment, seed=0)
    started = time.perf_counter()
    writer = make_writer()
    startup = time.perf_counter() - started
    started, cpu, process_cpu = time.perf_counter(), time.thread_time(), time.process_time()
    steps = drive(environment, policy, writer, episodes)
    summary = writer.close()
    wall = time.perf_counter() - started
    acting = time.thread_time() - cpu
    return {"rate": steps / wall, "startup": startup, "acting": acting / steps * 1e6,
            "worker": summary.worker_cpu_s / steps * 1e6,
            "server": (time.process_time() - process_cpu - acting) / steps * 1e6}


def _reverb_server():
    import reverb

    from rlstore.replay import transition_signature
    from rlstore.rollout import run_episodes
    from rlstore.schema import Schema

    environment = make_environment(ENV, seed=0)
    schema = Schema.derive(next(run_episodes(environment, make_policy(POLICY, ENV, environment), 1)))
    table = reverb.Table("transitions", sampler=reverb.selectors.Uniform(), remover=reverb.selectors.Fifo(),
                         max_size=1_000_000, rate_limiter=reverb.rate_limiters.MinSize(1),
                         signature=transition_signature(schema))
    return reverb.Server([table])


def measure(quick: bool) -> dict[str, Any]:
    """Runs the benchmark; returns its figures (what the JSON line holds)."""
    from rlstore.replay.logs import reverb_logs_filtered

    config = QUICK if quick else FULL
    episodes = config["episodes"]
    with tempfile.TemporaryDirectory() as root, reverb_logs_filtered():
        store = Store(root)
        server = _reverb_server()
        address = f"localhost:{server.port}"
        writers = {
            "store": lambda name: WriteBack(store, name, environment=ENV, policy=POLICY, commit_every=COMMIT_EVERY),
            "reverb": lambda name: WriteBack(store, name, environment=ENV, policy=POLICY, commit_every=COMMIT_EVERY,
                                             replay=address),
        }
        bare_loop(episodes // 10)  # warm-up
        load_before = os.getloadavg()
        runs: dict[str, list[dict[str, float]]] = {"baseline": [], "store": [], "reverb": []}
        for round_ in range(config["rounds"]):
            runs["baseline"].append(bare_loop(episodes))
            for kind, make in writers.items():
                runs[kind].append(writer_loop(episodes, lambda: make(f"{kind}{round_}")))
            log(f"round {round_}: " + ", ".join(f"{k} {v[-1]['rate']:,.0f} steps/s" for k, v in runs.items()))
        server.stop()
    best = {kind: max(values, key=lambda run: run["rate"]) for kind, values in runs.items()}
    overhead = {kind: 1.0 - best[kind]["rate"] / best["baseline"]["rate"] for kind in ("store", "reverb")}
    cpu = {kind: {part: round(best[kind][part], 2) for part in ("acting", "worker", "server") if part in best[kind]}
           for kind in best}
    return {
        "benchmark": "serve_writeback",
        "what": f"env steps/s of {ENV} ({POLICY} policy) with the write-back writer vs the same loop without it",
        "baseline": "the same acting loop without the writer",
        "episodes": episodes,
        "commit_every": COMMIT_EVERY,
        "baseline_steps_per_s": round(best["baseline"]["rate"]),
        "store_steps_per_s": round(best["store"]["rate"]),
        "store_and_reverb_steps_per_s": round(best["reverb"]["rate"]),
        "store_overhead": round(overhead["store"], 3),
        "store_and_reverb_overhead": round(overhead["reverb"], 3),
        "ratio": round(best["reverb"]["rate"] / best["baseline"]["rate"], 3),
        "target_overhead": TARGET_OVERHEAD,
        "meets_target": overhead["reverb"] <= TARGET_OVERHEAD,
        "store_meets_target": overhead["store"] <= TARGET_OVERHEAD,
        "cpu_us_per_step": cpu,
        "writer_startup_s": round(min(run["startup"] for kind in ("store", "reverb") for run in runs[kind]), 2),
        "rounds": config["rounds"],
        "load_average": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }


def main() -> None:
    parser = quick_parser(__doc__, "fewer episodes and rounds (< 60 s)")
    args = parser.parse_args()
    print(json.dumps(measure(args.quick)), flush=True)


if __name__ == "__main__":
    main()
