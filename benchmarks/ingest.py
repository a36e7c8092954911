"""Ingest throughput and memory: rlstore's Beam ingest pipeline against TFDS's own writer.

Workload (from the issue): episodes of 200 steps, each step a float32[4] observation, an int64
action, a float32 reward and a float32 discount, half the episodes terminal and half cut by a
time limit, logged as one `.npz` file per episode (`rlstore.pipelines.sources.npz.write_episode`).

Throughput: the same log directory is written by both sides, timed around the writing call
alone. TensorFlow and TFDS are imported, and each side has written a few warm-up episodes,
before any timing.
  * rlstore: `rlstore.pipelines.ingest.ingest(Store(...), "bench", [logs], format="npz")` on the
    default runner (the DirectRunner on every core; for these 7 MB of logs, on threads in this
    process: worker processes cost more to start than this whole ingest's work);
  * baseline: `tfds.dataset_builders.store_as_tfds_dataset` fed by a Python generator that loads
    each `.npz` with numpy and yields the RLDS episode, i.e. what a user writes without us.
The figure of merit is ours/baseline in steps per second of wall time; the target is 3x. The
machine is shared, so the sides take turns for `rounds` rounds and each keeps its best round.
CPU seconds (the process and its reaped children, i.e. Beam's workers) are reported alongside,
with the load average, because they are what other tenants cannot distort.

Memory: ingest must stream, so its peak must not grow with the number of episodes. Each size is
ingested in a fresh process (this script with a hidden `--child-memory LOGS` flag; the two run
side by side), so the peak belongs to that ingest alone, and reports:
  * driver: `ru_maxrss` of RUSAGE_SELF (the process that runs `ingest`);
  * children_rusage: `ru_maxrss` of RUSAGE_CHILDREN. On Linux a child inherits its parent's
    high-water mark across fork/exec, and importing TensorFlow spawns helper processes, so this
    figure tracks the driver rather than Beam's workers;
  * worker: the largest VmHWM of a Beam SDK worker process, sampled from /proc every 50 ms
    while the ingest runs (growth in a worker's last 50 ms before exit would be missed).
`growth` is the larger of peak(large)/peak(small) for driver and worker; flat memory is ~1.0.
(These inputs are small enough to be ingested on threads in the driver, so there is no worker
process and the driver's peak is the one that counts; `worker` is then 0 and left out.)

D4RL (under "d4rl" in the JSON line): one hopper-sized D4RL HDF5 file (1M steps; --quick: 200k),
written here with h5py in D4RL's key layout, is
  * read back with h5py alone, every array slice by slice: the ceiling, since ingest must read
    the same bytes (`ratio_to_h5py` = ingest steps/s over h5py steps/s, steps = file rows);
  * ingested with `--format d4rl` on the multi-process DirectRunner with 1 and with 2 workers
    (`speedup_2_workers`, target 1.6x; the file is cut into work items of whole episodes), and
    a tiny file likewise, whose time (`fixed_seconds_*`) is Beam's fixed cost, which more
    workers do not shrink;
  * ingested at 0.25M, 1M and 4M steps (--quick: 25k, 50k, 100k) in one fresh process, smallest
    first, for peak memory: the driver's ru_maxrss after each (it only grows, so growth would
    show) and the largest VmHWM of each ingest's own Beam workers.

Scale (under "scale"): one D4RL file of 10M steps (--quick: 2M; `--scale-steps N`), about 1 GiB,
written into the working directory (`--work DIR`), ingested with 1 and with 2 workers:
  * DirectRunner worker processes (`--direct_running_mode=multi_processing --direct_num_workers=K`);
  * a Dask cluster started here for each K (`dask scheduler` and K `dask worker --nthreads 1`
    processes on 127.0.0.1, before the clock starts) through Beam's DaskRunner.
`speedup_2_workers_direct` and `speedup_2_workers_dask` are 1 worker's seconds over 2 workers'
(target 1.6x). The file is cut into work items of ~100k steps of whole episodes, each read by
the worker that gets it (h5py slices), so workers share no single-process step but the driver's
planning (a scan of the done flags) and publishing. The machine's 2 cores are shared: the load
average before and after is in the JSON, and for every run `others_cores`, the cores that other
processes kept busy meanwhile (a figure is this benchmark's only while that stays near 0).

S3 (under "s3"): the throughput part's npz logs ingested into a local store and into a store in
a bucket (`s3://`, a moto S3 server started here on 127.0.0.1, reached through
AWS_ENDPOINT_URL), both on the default runner, best of `rounds` turns each. The bucket side
pays for what rlstore's object-store path costs (the workers' shard uploads, server-side copies,
conditional creates, the lease), not a network, which a real bucket adds; moto is Python and
shares the CPU. `s3_vs_local_ingest` is S3 steps/s over local steps/s (1.0 = no cost).

`--only PART` (repeatable) runs a part alone: ratio, memory, d4rl, scale, s3.

Prints one JSON line on stdout; progress goes to stderr.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import log, quick_parser  # noqa: E402

from rlstore.quiet import silence  # noqa: E402

silence()  # before TensorFlow

logging.getLogger().setLevel(logging.ERROR)  # Beam warns on the root logger about optional GCP clients

import numpy as np  # noqa: E402

from rlstore.pipelines.dask_cluster import local_dask_cluster  # noqa: E402
from rlstore.pipelines.ingest import ingest  # noqa: E402
from rlstore.pipelines.sources.npz import write_episode  # noqa: E402
from rlstore.episode import make_episode  # noqa: E402
from rlstore.store import Store  # noqa: E402

TARGET_RATIO = 3.0
WARMUP_EPISODES = 8
SAMPLE_SECONDS = 0.05
BEAM_WORKER = "apache_beam.runners.worker.sdk_worker_main"
FULL = {"episodes": 1000, "rounds": 3, "memory": (1000, 4000),
        "d4rl": {"steps": 1_000_000, "rounds": 2, "memory": (250_000, 1_000_000, 4_000_000)},
        "scale": {"steps": 10_000_000, "rounds": 1}}
QUICK = {"episodes": 200, "rounds": 1, "memory": (250, 1000),
         "d4rl": {"steps": 200_000, "rounds": 1, "memory": (25_000, 50_000, 100_000)},
         "scale": {"steps": 2_000_000, "rounds": 1}}
PARTS = ("ratio", "memory", "d4rl", "scale", "s3")


# ---- workload ----------------------------------------------------------------------------------

def write_logs(directory: Path, episodes: int, steps: int, seed: int = 0) -> Path:
    """Writes `episodes` random episodes of `steps` steps, one npz file each, into `directory`."""
    directory.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(episodes):
        terminal = i % 2 == 0
        discount = np.ones(steps, np.float32)
        discount[-2] = 0.0 if terminal else 1.0
        episode = make_episode(
            observation=rng.standard_normal((steps, 4), dtype=np.float32),
            action=rng.integers(0, 4, steps, dtype=np.int64),
            reward=rng.standard_normal(steps, dtype=np.float32),
            discount=discount,
            is_terminal=terminal,
        )
        write_episode(directory / f"episode-{i:06d}.npz", episode)
    return directory


# ---- the two writers ---------------------------------------------------------------------------

def cpu_seconds() -> float:
    """User + system CPU time of this process and of its reaped children (Beam's workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(write: Callable[[], int]) -> dict:
    """Runs `write` (which returns the number of steps written); its wall and CPU seconds."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    steps = write()
    return {"seconds": time.perf_counter() - wall, "cpu_seconds": cpu_seconds() - cpu, "steps": steps}


def run_ingest(logs: Path, store_root: Path) -> int:
    """rlstore: ingests `logs` into a new store; returns the number of steps written."""
    return ingest(Store(store_root), "bench", [str(logs)], format="npz").num_steps


def baseline_features():
    import tensorflow_datasets as tfds

    scalar = tfds.features.Scalar
    return tfds.features.FeaturesDict({"steps": tfds.features.Dataset({
        "observation": tfds.features.Tensor(shape=(4,), dtype=np.float32),
        "action": scalar(dtype=np.int64),
        "reward": scalar(dtype=np.float32),
        "discount": scalar(dtype=np.float32),
        "is_first": scalar(dtype=np.bool_),
        "is_last": scalar(dtype=np.bool_),
        "is_terminal": scalar(dtype=np.bool_),
    })})


def npz_episodes(logs: Path, lengths: list[int]):
    """(key, RLDS episode) per npz file, loaded with numpy as the writer consumes it."""
    for key, path in enumerate(sorted(logs.glob("*.npz"))):
        with np.load(path) as arrays:
            episode = make_episode(arrays["observation"], arrays["action"], arrays["reward"],
                                   arrays["discount"], bool(arrays["is_terminal"]))
        lengths.append(len(episode["steps"]["reward"]))
        yield key, episode


def run_baseline(logs: Path, data_dir: Path) -> int:
    """TFDS: writes `logs` with store_as_tfds_dataset; returns the number of steps written."""
    import tensorflow_datasets as tfds

    lengths: list[int] = []
    tfds.dataset_builders.store_as_tfds_dataset(
        name="bench", version="1.0.0", features=baseline_features(),
        split_datasets={"train": npz_episodes(logs, lengths)}, data_dir=str(data_dir))
    return sum(lengths)


# ---- throughput --------------------------------------------------------------------------------

def best(runs: list[dict]) -> dict:
    return min(runs, key=lambda run: run["seconds"])


def throughput(work: Path, episodes: int, steps: int, rounds: int) -> dict:
    """Steps/s of rlstore's ingest and of the TFDS baseline on the same logs, best of `rounds` turns."""
    import tensorflow  # noqa: F401  (imported before timing: neither side pays for it)
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    warmup = write_logs(work / "warmup-logs", WARMUP_EPISODES, steps, seed=1)
    run_ingest(warmup, work / "warmup-store")
    run_baseline(warmup, work / "warmup-tfds")
    logs = write_logs(work / "logs", episodes, steps)
    load = os.getloadavg()[0]
    ours, base = [], []
    for i in range(rounds):
        ours.append(timed(lambda: run_ingest(logs, work / f"store-{i}")))
        base.append(timed(lambda: run_baseline(logs, work / f"tfds-{i}")))
        log(f"round {i + 1}/{rounds}: rlstore {ours[-1]['seconds']:.2f} s, baseline {base[-1]['seconds']:.2f} s "
            f"({episodes} episodes x {steps} steps)")
    ours, base = best(ours), best(base)
    ratio = (ours["steps"] / ours["seconds"]) / (base["steps"] / base["seconds"])
    return {
        "rounds": rounds,
        "load_avg_1m": round(load, 2),
        "rlstore_seconds": round(ours["seconds"], 3),
        "baseline_seconds": round(base["seconds"], 3),
        "rlstore_steps_per_s": round(ours["steps"] / ours["seconds"]),
        "baseline_steps_per_s": round(base["steps"] / base["seconds"]),
        "rlstore_cpu_seconds": round(ours["cpu_seconds"], 2),
        "baseline_cpu_seconds": round(base["cpu_seconds"], 2),
        "ratio": round(ratio, 2),
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio >= TARGET_RATIO,
    }


# ---- a store in a bucket ------------------------------------------------------------------------

def start_s3():
    """A moto S3 server on 127.0.0.1, with the process's AWS variables pointing at it."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_ACCESS_KEY_ID="bench",
                      AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
    return server


def new_bucket() -> str:
    """`s3://<a new bucket>/store` on the server `start_s3` started."""
    import uuid

    import boto3

    name = f"bench-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return f"s3://{name}/store"


def s3_vs_local_ingest(work: Path, logs: Path, rounds: int) -> tuple[dict, str]:
    """Ingest steps/s into a local store and into a bucket (the moto server must be up), best of
    `rounds` turns each; also the URL of the last bucket store written."""
    run_ingest(logs, work / "s3-warmup")
    local, remote = [], []
    for i in range(rounds):
        local.append(timed(lambda: run_ingest(logs, work / f"s3-local-{i}")))
        os.environ["RLSTORE_CACHE"] = str(work / f"s3-cache-{i}")
        url = new_bucket()
        remote.append(timed(lambda: ingest(Store(url), "bench", [str(logs)], format="npz").num_steps))
        log(f"s3 round {i + 1}/{rounds}: local {local[-1]['seconds']:.2f} s, s3 {remote[-1]['seconds']:.2f} s")
    local_rate = max(run["steps"] / run["seconds"] for run in local)
    remote_rate = max(run["steps"] / run["seconds"] for run in remote)
    return {"rounds": rounds, "load_avg_1m": round(os.getloadavg()[0], 2), "local_steps_per_s": round(local_rate),
            "s3_steps_per_s": round(remote_rate), "s3_vs_local_ingest": round(remote_rate / local_rate, 3)}, url


def s3_ingest(work: Path, episodes: int, steps: int, rounds: int) -> dict:
    logs = work / "logs"
    if not logs.is_dir():  # the throughput part may have written them
        logs = write_logs(logs, episodes, steps)
    server = start_s3()
    try:
        return s3_vs_local_ingest(work, logs, rounds)[0]
    finally:
        server.stop()


# ---- memory ------------------------------------------------------------------------------------

def descendants(root: int) -> list[int]:
    """Every live descendant of process `root` (Beam's workers run under a `sh -c`)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(stat.parent.name))
    found, pending = [], [root]
    while pending:
        kids = children.get(pending.pop(), [])
        found += kids
        pending += kids
    return found


def worker_peak_kib(pid: int) -> int:
    """VmHWM of `pid` if it is a Beam SDK worker, else 0."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        if BEAM_WORKER in Path(f"/proc/{pid}/cmdline").read_text():
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
            return int(next(line for line in status if line.startswith("VmHWM:")).split()[1])
    return 0


def sample_worker_peaks(stop: threading.Event, peaks: dict[int, int]) -> None:
    while not stop.wait(SAMPLE_SECONDS):
        for pid in descendants(os.getpid()):
            peaks[pid] = max(peaks.get(pid, 0), worker_peak_kib(pid))


def child_memory(logs: Path) -> None:
    """Runs in a fresh process: ingests `logs` and prints its peak memory (MiB) as JSON."""
    stop, peaks = threading.Event(), {}
    sampler = threading.Thread(target=sample_worker_peaks, args=(stop, peaks), daemon=True)
    sampler.start()
    with tempfile.TemporaryDirectory(prefix="rlstore-bench-store-") as store_root:
        with contextlib.redirect_stdout(sys.stderr):
            run_ingest(logs, Path(store_root))
    stop.set()
    sampler.join()
    mib = 1024  # ru_maxrss and VmHWM are in KiB on Linux
    print(json.dumps({
        "driver": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / mib, 1),
        "children_rusage": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / mib, 1),
        "worker": round(max(peaks.values(), default=0) / mib, 1),
    }))


def start_memory_child(logs: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--child-memory", str(logs)], stdout=subprocess.PIPE, text=True)


def memory_child_result(child: subprocess.Popen) -> dict:
    output, _ = child.communicate()
    if child.returncode:
        raise RuntimeError(f"the memory measurement process failed with exit code {child.returncode}")
    return json.loads(output.strip().splitlines()[-1])


def memory(work: Path, sizes: tuple[int, int], steps: int) -> dict:
    """Peak memory of ingests of two sizes, each in its own process. The two processes run at
    the same time (to halve the wall time): peaks are per process, so they do not mix."""
    logs = [write_logs(work / f"memory-{size}", size, steps) for size in sizes]
    log(f"measuring the peak memory of ingesting {sizes[0]} and {sizes[1]} episodes, each in its own process")
    children = [start_memory_child(path) for path in logs]
    try:
        small, large = [memory_child_result(child) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    return {
        "episodes_small": sizes[0],
        "episodes_large": sizes[1],
        "peak_rss_mib_small": small,
        "peak_rss_mib_large": large,
        "growth": round(max(large[k] / small[k] for k in ("driver", "worker") if small[k]), 3),
    }


# ---- D4RL: one large HDF5 file -----------------------------------------------------------------

D4RL_KEYS = {"observations": ((11,), np.float32), "next_observations": ((11,), np.float32),
             "actions": ((3,), np.float32), "rewards": ((), np.float32), "terminals": ((), np.bool_),
             "timeouts": ((), np.bool_)}
D4RL_CHUNK = 250_000
D4RL_TIME_LIMIT = 1000
D4RL_TINY = 2_000
TARGET_SPEEDUP = 1.6


def write_d4rl(path: Path, steps: int, seed: int = 0) -> Path:
    """A hopper-sized D4RL file (float32[11] observations, float32[3] actions) in D4RL's key layout,
    written in chunks with h5py. Episodes last 100..1000 steps: shorter ones end on a terminal,
    full ones on a timeout; the file ends inside an unfinished episode, as D4RL files do."""
    import h5py

    rng = np.random.default_rng(seed)
    lengths = rng.integers(100, D4RL_TIME_LIMIT + 1, size=steps // 100 + 1)
    ends = np.cumsum(lengths) - 1
    ends = ends[ends < steps - 1]
    with h5py.File(path, "w") as h5:
        datasets = {key: h5.create_dataset(key, shape=(steps, *shape), dtype=dtype)
                    for key, (shape, dtype) in D4RL_KEYS.items()}
        for start in range(0, steps, D4RL_CHUNK):
            stop = min(start + D4RL_CHUNK, steps)
            rows = stop - start
            observations = rng.standard_normal((rows + 1, 11), dtype=np.float32)
            datasets["observations"][start:stop] = observations[:-1]
            datasets["next_observations"][start:stop] = observations[1:]
            datasets["actions"][start:stop] = rng.uniform(-1, 1, (rows, 3)).astype(np.float32)
            datasets["rewards"][start:stop] = rng.standard_normal(rows, dtype=np.float32)
            done = ends[(ends >= start) & (ends < stop)]
            full = lengths[:len(ends)][(ends >= start) & (ends < stop)] == D4RL_TIME_LIMIT
            for key, chosen in (("terminals", done[~full]), ("timeouts", done[full])):
                flags = np.zeros(rows, bool)
                flags[chosen - start] = True
                datasets[key][start:stop] = flags
    return path


def read_d4rl_raw(path: Path) -> int:
    """The ceiling: every array of the file read with h5py alone, slice by slice; returns the steps."""
    import h5py

    with h5py.File(path, "r") as h5:
        steps = len(h5["observations"])
        for start in range(0, steps, D4RL_CHUNK):
            for key in D4RL_KEYS:
                h5[key][start:start + D4RL_CHUNK]
    return steps


def run_d4rl_ingest(path: Path, store_root: Path, workers: int | None = None, beam_args: list[str] | None = None) -> int:
    """rlstore: ingests one D4RL file; returns the file's rows (each episode's extra final step,
    taken from next_observations, is not counted), as the h5py read counts them. `workers`
    selects the multi-process DirectRunner with that many worker processes."""
    if beam_args is None:
        beam_args = [] if workers is None else ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
    manifest = ingest(Store(store_root), "bench", [str(path)], format="d4rl", beam_args=beam_args)
    shutil.rmtree(store_root, ignore_errors=True)  # large stores would fill the disk
    return manifest.num_steps - manifest.num_episodes


def d4rl_throughput(work: Path, steps: int, rounds: int) -> dict:
    """Ingest steps/s against a raw h5py read of the same file, and 2 Beam workers against 1.

    Beam's fixed cost (pipeline start-up, one SDK worker process per worker) does not shrink
    with more workers; an ingest of a tiny file (D4RL_TINY steps) with as many workers shows it
    next to the end-to-end figures. Runs after `throughput`, whose warm-up already imported
    TensorFlow, TFDS and Beam here.
    """
    path = write_d4rl(work / "d4rl.hdf5", steps)
    tiny = write_d4rl(work / "d4rl-tiny.hdf5", D4RL_TINY, seed=1)
    load = os.getloadavg()[0]
    runs: dict[str, list[dict]] = {"raw": [], "1": [], "2": [], "tiny-1": [], "tiny-2": []}
    for i in range(rounds):
        runs["raw"].append(timed(lambda: read_d4rl_raw(path)))
        for workers in (1, 2):
            runs[str(workers)].append(timed(lambda: run_d4rl_ingest(path, work / f"d4rl-{workers}-{i}", workers)))
            runs[f"tiny-{workers}"].append(timed(lambda: run_d4rl_ingest(tiny, work / f"tiny-{workers}-{i}", workers)))
        log(f"d4rl round {i + 1}/{rounds}: h5py {runs['raw'][-1]['seconds']:.2f} s, ingest with 1 worker "
            f"{runs['1'][-1]['seconds']:.2f} s, with 2 workers {runs['2'][-1]['seconds']:.2f} s ({steps} steps); "
            f"a {D4RL_TINY}-step file: {runs['tiny-1'][-1]['seconds']:.2f} s and {runs['tiny-2'][-1]['seconds']:.2f} s")
    raw, one, two, tiny_one, tiny_two = (best(runs[key]) for key in ("raw", "1", "2", "tiny-1", "tiny-2"))
    ours = two["steps"] / two["seconds"]
    ceiling = raw["steps"] / raw["seconds"]
    speedup = one["seconds"] / two["seconds"]
    return {
        "steps": steps,
        "file_mib": round(path.stat().st_size / 2**20, 1),
        "rounds": rounds,
        "load_avg_1m": round(load, 2),
        "h5py_read_steps_per_s": round(ceiling),
        "ingest_steps_per_s": round(ours),
        "ratio_to_h5py": round(ours / ceiling, 4),
        "ingest_seconds_1_worker": round(one["seconds"], 3),
        "ingest_seconds_2_workers": round(two["seconds"], 3),
        "ingest_cpu_seconds_1_worker": round(one["cpu_seconds"], 2),
        "ingest_cpu_seconds_2_workers": round(two["cpu_seconds"], 2),
        "fixed_seconds_1_worker": round(tiny_one["seconds"], 3),
        "fixed_seconds_2_workers": round(tiny_two["seconds"], 3),
        "speedup_2_workers": round(speedup, 2),
        "target_speedup": TARGET_SPEEDUP,
        "meets_speedup_target": speedup >= TARGET_SPEEDUP,
    }


def child_memory_d4rl(paths: list[Path]) -> None:
    """Runs in a fresh process: ingests D4RL files of growing size one after another and prints,
    per file, the driver's peak so far (ru_maxrss only grows, so growth would show) and the peak
    of that ingest's own Beam workers (new processes for every pipeline run)."""
    mib, results = 1024, []
    with tempfile.TemporaryDirectory(prefix="rlstore-bench-store-") as store_root:
        for index, path in enumerate(paths):
            stop, peaks = threading.Event(), {}
            sampler = threading.Thread(target=sample_worker_peaks, args=(stop, peaks), daemon=True)
            sampler.start()
            with contextlib.redirect_stdout(sys.stderr):
                run_d4rl_ingest(path, Path(store_root) / str(index))
            stop.set()
            sampler.join()
            results.append({"driver": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / mib, 1),
                            "worker": round(max(peaks.values(), default=0) / mib, 1)})
    print(json.dumps(results))


def d4rl_memory(work: Path, sizes: tuple[int, ...]) -> dict:
    """Peak memory of ingesting D4RL files of `sizes` steps (one process, smallest first)."""
    paths = [write_d4rl(work / f"d4rl-memory-{size}.hdf5", size, seed=2) for size in sizes]
    log(f"measuring the peak memory of ingesting D4RL files of {', '.join(map(str, sizes))} steps")
    result = subprocess.run([sys.executable, __file__, "--child-memory-d4rl", *map(str, paths)],
                            stdout=subprocess.PIPE, text=True, check=True)
    peaks = json.loads(result.stdout.strip().splitlines()[-1])
    return {"steps": list(sizes), "peak_rss_mib": peaks,
            "growth": round(max(peaks[-1][k] / peaks[0][k] for k in ("driver", "worker")), 3)}


# ---- scale: a large D4RL file on 1 and 2 workers, DirectRunner and Dask ------------------------

DASK_RUNNER = "--runner=apache_beam.runners.dask.dask_runner.DaskRunner"


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has spent since boot, over all cores (/proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields)
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds of this process and of all its descendants, live (the Dask cluster, a Beam worker
    under its `sh -c`, with what they reaped) or reaped by it."""
    total = cpu_seconds()
    for pid in descendants(os.getpid()):
        with contextlib.suppress(OSError, IndexError, ValueError):
            utime, stime, cutime, cstime = map(int, Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[11:15])
            total += (utime + stime + cutime + cstime) / os.sysconf("SC_CLK_TCK")
    return total


def with_others_cores(run: Callable[[], dict]) -> dict:
    """`run()`'s result plus `others_cores`: the cores other processes kept busy meanwhile (the
    machine's busy CPU seconds minus ours, over the wall time). On a shared machine a figure is
    only this benchmark's while that stays near 0: with the kernel's autogroup scheduling a busy
    session elsewhere leaves this one about a core, whether it runs 1 worker or 2."""
    wall, machine, own = time.perf_counter(), machine_busy_seconds(), own_cpu_seconds()
    result = run()
    wall, machine, own = time.perf_counter() - wall, machine_busy_seconds() - machine, own_cpu_seconds() - own
    return {**result, "others_cores": round(max(machine - own, 0.0) / wall, 2)}


def scale(work: Path, steps: int, rounds: int) -> dict:
    """Wall seconds of ingesting one `steps`-row D4RL file with 1 and with 2 workers: worker
    processes of the DirectRunner, and `dask worker` processes of a local Dask cluster (started
    for each count, before the clock starts). Best of `rounds` for each; the configurations take
    turns round by round."""
    # The driver's one-time costs (importing TensorFlow and TFDS for the segment's metadata, Beam,
    # h5py) are paid here, before any timing, or the first configuration timed would carry them.
    tiny = write_d4rl(work / "d4rl-scale-warmup.hdf5", D4RL_TINY, seed=4)
    run_d4rl_ingest(tiny, work / "scale-warmup", 1)
    path = write_d4rl(work / "d4rl-scale.hdf5", steps, seed=3)
    log(f"scale: wrote a {steps:,}-step D4RL file ({path.stat().st_size / 2**20:.0f} MiB)")
    load = [round(x, 2) for x in os.getloadavg()]
    runs: dict[str, list[dict]] = {f"{runner}_{workers}": [] for runner in ("direct", "dask") for workers in (1, 2)}
    for i in range(rounds):  # 1 and 2 workers take turns, so another user's burst hits one round, not one side
        for runner in ("direct", "dask"):
            for workers in (1, 2):
                store = work / f"scale-{runner}-{workers}-{i}"
                if runner == "direct":
                    run = with_others_cores(lambda: timed(lambda: run_d4rl_ingest(path, store, workers)))
                else:
                    with local_dask_cluster(workers, work / f"dask-{workers}") as address:
                        args = [DASK_RUNNER, f"--dask_client_address={address}"]
                        run = with_others_cores(lambda: timed(lambda: run_d4rl_ingest(path, store, beam_args=args)))
                runs[f"{runner}_{workers}"].append(run)
                log(f"scale round {i + 1}/{rounds}: {runner}, {workers} worker(s): {run['seconds']:.1f} s "
                    f"(load {os.getloadavg()[0]:.1f}; other processes kept {run['others_cores']:.2f} cores busy)")
    seconds = {key: best(values)["seconds"] for key, values in runs.items()}
    path.unlink()
    result = {"steps": steps, "rounds": rounds, "load_avg_before": load,
              "all_seconds": {key: [round(run["seconds"], 2) for run in values] for key, values in runs.items()},
              "others_cores": {key: [run["others_cores"] for run in values] for key, values in runs.items()},
              "load_avg_after": [round(x, 2) for x in os.getloadavg()],
              **{f"seconds_{key}": round(value, 2) for key, value in seconds.items()},
              "steps_per_s_direct_2_workers": round(steps / seconds["direct_2"]),
              "target_speedup": TARGET_SPEEDUP}
    for runner in ("direct", "dask"):
        speedup = seconds[f"{runner}_1"] / seconds[f"{runner}_2"]
        result[f"speedup_2_workers_{runner}"] = round(speedup, 2)
        result[f"meets_target_{runner}"] = speedup >= TARGET_SPEEDUP
    return result


# ---- entry point -------------------------------------------------------------------------------

def parse_args() -> argparse.Namespace:
    parser = quick_parser(__doc__, "smaller sizes, well under a minute")
    parser.add_argument("--episodes", type=int, help="episodes for the throughput comparison")
    parser.add_argument("--steps", type=int, default=200, help="steps per episode")
    parser.add_argument("--only", choices=PARTS, action="append",
                        help="run only this part (repeatable): ratio (npz vs TFDS), memory, d4rl (1M steps vs "
                             "h5py, its memory), scale (a large D4RL file on 1 and 2 workers, DirectRunner and Dask), "
                             "s3 (the npz ingest into a bucket on a local S3 server against a local store)")
    parser.add_argument("--scale-steps", type=int, help="rows of the scale part's D4RL file (default 10M; --quick 2M)")
    parser.add_argument("--scale-rounds", type=int, help="rounds of the scale part, best kept (default 1)")
    parser.add_argument("--work", type=Path, help="working directory (default: a new temporary directory); the "
                                                  "scale part writes a ~1 GiB file and stores of a few GiB there")
    parser.add_argument("--child-memory", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-memory-d4rl", type=Path, nargs="+", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.child_memory:
        return child_memory(args.child_memory)
    if args.child_memory_d4rl:
        return child_memory_d4rl(args.child_memory_d4rl)
    sizes = QUICK if args.quick else FULL
    parts = set(args.only or PARTS)
    episodes = args.episodes or sizes["episodes"]
    report = {"benchmark": "ingest", "quick": args.quick, "episodes": episodes, "steps_per_episode": args.steps}
    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rlstore-bench-", dir=args.work))
    try:
        with contextlib.redirect_stdout(sys.stderr):  # TFDS prints its progress messages to stdout
            if "ratio" in parts:
                report.update(throughput(work, episodes, args.steps, sizes["rounds"]))
            if "memory" in parts:
                report["memory"] = memory(work, sizes["memory"], args.steps)
            d4rl = sizes["d4rl"]
            if "d4rl" in parts:
                report["d4rl"] = d4rl_throughput(work, d4rl["steps"], d4rl["rounds"])
                report["d4rl"]["memory"] = d4rl_memory(work, d4rl["memory"])
            if "scale" in parts:
                report["scale"] = scale(work, args.scale_steps or sizes["scale"]["steps"],
                                        args.scale_rounds or sizes["scale"]["rounds"])
            if "s3" in parts:
                report["s3"] = s3_ingest(work, episodes, args.steps, sizes["rounds"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
