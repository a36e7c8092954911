"""PyTorch reading throughput: rlstore.torch against TorchRL's and d3rlpy's replay sampling.

Workload: the store version of `benchmarks/serve.py` (1,000 episodes x 200 steps, float32[4]
observations, int64 actions, half terminal, 8 shards), built in a child process so this one never
imports TensorFlow. Measured in the same run, batch 256, 1-step transitions
{observation, action, reward, discount, next_observation} as torch tensors:
  * rlstore:  `rlstore.torch.TransitionDataset` under `DataLoader(batch_size=None, num_workers=2)`,
    whole shuffled epochs read from the store's shards (decoding, n-step transform, shuffling and
    batching included), each epoch with `set_epoch`;
  * TorchRL:  `ReplayBuffer(LazyMemmapStorage, RandomSampler, batch_size=256)` holding the same
    transitions (filled from the store once, not timed), `sample()` in a loop;
  * d3rlpy:   `ReplayBuffer(InfiniteBuffer)` over an `MDPDataset` of the same episodes,
    `sample_transition_batch(256)` in a loop.
  * rlstore replay: `rlstore.torch.TransitionReplay`, the version decoded once into RAM when the
    dataset is made (not timed, as the baselines' filling is not), uniform batches gathered by
    index: through `replay.loader(num_workers=2)` (THE figure of the target: a real DataLoader
    with 2 workers, each handing off blocks of 64 batches through shared-memory slots), batch by batch
    under `DataLoader(replay, batch_size=None, num_workers=2)`, and `sample()` in this process
    (what the baselines do).
The baselines sample from memory they filled beforehand, as the replay datasets do; the epoch
datasets read from disk every epoch.
Rates are transitions/s, the best of `rounds` windows of `rows` transitions each (`replay_rows`
for the replay dataset and TorchRL, which are fast enough to need longer windows). Memory: for
the epoch datasets, the proportional set size of the main process plus its DataLoader workers at
their peak, the whole process included; for the replay dataset and the baselines, the resident
size that filling them added (plus TorchRL's memmap files on disk), and for the replay dataset
also the bytes of its columns and what its two workers added on top of the main process (their
unique set size), each way.

Install the baselines with `pip install -c constraints.txt -e '.[bench]'` (keep `-e` in a checkout) and
`pip install --no-deps d3rlpy==2.8.1` (its pins of gymnasium 1.0 and gym clash with rlstore's;
the listed deps in the extra are what d3rlpy needs at run time). Prints one JSON line.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import choose_budget, log  # noqa: E402

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from rlstore.numpy import episodes as read_episodes  # noqa: E402
from rlstore.numpy.transforms import episode_transitions  # noqa: E402
from rlstore.store import Store  # noqa: E402
from rlstore.torch import TransitionDataset, TransitionReplay  # noqa: E402

BATCH = 256
TARGET_RATIO = 1.0
_BUILD = "import sys; from pathlib import Path; from benchmarks.serve import build_version; " \
         "print(build_version(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))[1])"


def build(root: Path, episodes: int, steps: int) -> str:
    """The benchmark version, written by a child process (which imports TensorFlow, this one never does)."""
    result = subprocess.run([sys.executable, "-c", _BUILD, str(root), str(episodes), str(steps)], check=True,
                            capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    return result.stdout.strip().splitlines()[-1]


def _pss(processes: list[psutil.Process]) -> int:
    """Proportional set size: shared pages (the workers share the parent's) counted once overall."""
    total = 0
    for process in processes:
        try:
            total += process.memory_full_info().pss
        except psutil.Error:
            pass
    return total


def measure_rlstore(store: Store, ref: str, rows: int, rounds: int, persistent: bool) -> tuple[float, int]:
    """(best transitions/s, peak resident bytes of this process and its workers) over whole epochs:
    new workers each epoch with `set_epoch`, or `persistent` workers that move on by themselves."""
    me = psutil.Process()
    data = TransitionDataset(store, ref, batch_size=BATCH, seed=0)
    kept = DataLoader(data, batch_size=None, num_workers=2, persistent_workers=True) if persistent else None
    best, peak, epoch = 0.0, 0, 0
    for _ in range(rounds):
        served, started = 0, time.perf_counter()
        while served < rows:
            data.set_epoch(epoch)
            epoch += 1
            loader = kept if kept is not None else DataLoader(data, batch_size=None, num_workers=2)
            for number, batch in enumerate(loader):
                served += len(batch["reward"])
                if number % 64 == 0:
                    peak = max(peak, _pss([me, *me.children(recursive=True)]))
        best = max(best, served / (time.perf_counter() - started))
    return best, peak


def _through_workers(loader: Iterable[dict[str, Any]], rounds: int) -> tuple[float, int]:
    """(best transitions/s over `rounds` passes of a loader with persistent workers, the most
    its workers' unique memory reached after their first batches)."""
    me = psutil.Process()
    best, workers_added = 0.0, 0
    for _ in range(rounds):
        served, started = 0, time.perf_counter()
        for number, batch in enumerate(loader):
            served += len(batch["reward"])
            if number == 256:
                workers_added = max(workers_added, sum(child.memory_full_info().uss
                                                       for child in me.children(recursive=True)))
        best = max(best, served / (time.perf_counter() - started))
    return best, workers_added


def measure_replay(store: Store, ref: str, rows: int, rounds: int) -> dict[str, float]:
    """Transitions/s of `TransitionReplay` through `loader()` and batch by batch under 2
    DataLoader workers, and in this process; its memory."""
    me = psutil.Process()
    before = me.memory_info().rss
    replay = TransitionReplay(store, ref, batch_size=BATCH, seed=0, batches=rows // BATCH)
    added = me.memory_info().rss - before
    blocks = replay.loader(num_workers=2, persistent_workers=True)
    loader_best, loader_added = _through_workers(blocks, rounds)
    del blocks
    batch_by_batch = DataLoader(replay, batch_size=None, num_workers=2, persistent_workers=True, prefetch_factor=8)
    workers_best, workers_added = _through_workers(batch_by_batch, rounds)
    del batch_by_batch
    in_process_best = 0.0
    for _ in range(rounds):
        served, started = 0, time.perf_counter()
        while served < rows:
            served += len(replay.sample()["reward"])
        in_process_best = max(in_process_best, served / (time.perf_counter() - started))
    return {"loader": loader_best, "workers": workers_best, "in_process": in_process_best, "rss_added": added,
            "columns": replay.replay.nbytes(), "loader_workers_uss": loader_added, "workers_uss": workers_added}


def load_transitions(store: Store, ref: str) -> dict[str, np.ndarray]:
    """Every 1-step transition of the version, for filling the baselines' buffers."""
    parts = [episode_transitions(e["steps"]) for e in read_episodes(store, ref, shuffle=False)]
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def measure_torchrl(table: dict[str, np.ndarray], directory: Path, rows: int, rounds: int) -> tuple[float, int, int]:
    """(best transitions/s, resident bytes added, memmap bytes on disk)."""
    from tensordict import TensorDict
    from torchrl.data import LazyMemmapStorage, ReplayBuffer
    from torchrl.data.replay_buffers.samplers import RandomSampler

    me = psutil.Process()
    before = me.memory_info().rss
    size = len(table["reward"])
    buffer = ReplayBuffer(storage=LazyMemmapStorage(size, scratch_dir=str(directory)), sampler=RandomSampler(),
                          batch_size=BATCH)
    data = TensorDict({key: torch.from_numpy(value) for key, value in table.items()}, batch_size=[size])
    buffer.extend(data)
    del data
    added = me.memory_info().rss - before
    disk = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
    best = 0.0
    for _ in range(rounds):
        served, started = 0, time.perf_counter()
        while served < rows:
            served += buffer.sample().batch_size[0]
        best = max(best, served / (time.perf_counter() - started))
    return best, added, disk


def measure_d3rlpy(store: Store, ref: str, rows: int, rounds: int) -> tuple[float, int]:
    """(best transitions/s, resident bytes added) sampling d3rlpy's replay buffer."""
    import d3rlpy

    me = psutil.Process()
    before = me.memory_info().rss
    observations, actions, rewards, terminals, timeouts = [], [], [], [], []
    for episode in read_episodes(store, ref, shuffle=False):
        steps = episode["steps"]
        rows_here = len(steps["reward"]) - 1  # d3rlpy keeps transitions; the final observation is implied
        observations.append(steps["observation"][:rows_here])
        actions.append(steps["action"][:rows_here])
        rewards.append(steps["reward"][:rows_here])
        end = np.zeros(rows_here, np.float32)
        end[-1] = 1.0
        terminal = bool(steps["is_terminal"][-1])
        terminals.append(end if terminal else np.zeros_like(end))
        timeouts.append(np.zeros_like(end) if terminal else end)
    dataset = d3rlpy.dataset.MDPDataset(np.concatenate(observations), np.concatenate(actions)[:, None],
                                        np.concatenate(rewards), np.concatenate(terminals),
                                        timeouts=np.concatenate(timeouts),
                                        action_space=d3rlpy.constants.ActionSpace.DISCRETE, action_size=4)
    added = me.memory_info().rss - before
    best = 0.0
    for _ in range(rounds):
        served, started = 0, time.perf_counter()
        while served < rows:
            batch = dataset.sample_transition_batch(BATCH)
            served += len(batch.rewards)
        best = max(best, served / (time.perf_counter() - started))
    return best, added


def main() -> None:
    quick, budget = choose_budget(__doc__, {"episodes": 200, "steps": 200, "rows": 100_000, "replay_rows": 500_000,
                                           "rounds": 2},
                                  {"episodes": 1000, "steps": 200, "rows": 600_000, "replay_rows": 2_000_000,
                                   "rounds": 3})
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="rlstore-frameworks-") as temporary:
        root = Path(temporary)
        log(f"building {budget['episodes']} x {budget['steps']} steps")
        ref = build(root / "store", budget["episodes"], budget["steps"])
        store = Store(root / "store")
        log("rlstore.torch, 2 DataLoader workers")
        rlstore_rate, rlstore_peak = measure_rlstore(store, ref, budget["rows"], budget["rounds"], persistent=False)
        persistent_rate, _ = measure_rlstore(store, ref, budget["rows"], budget["rounds"], persistent=True)
        log("rlstore.torch replay, 2 DataLoader workers and in process")
        replay = measure_replay(store, ref, budget["replay_rows"], budget["rounds"])
        log("TorchRL LazyMemmapStorage + RandomSampler")
        table = load_transitions(store, ref)
        (root / "memmap").mkdir()
        torchrl_rate, torchrl_added, torchrl_disk = measure_torchrl(table, root / "memmap", budget["replay_rows"],
                                                                    budget["rounds"])
        del table
        log("d3rlpy ReplayBuffer")
        with contextlib.redirect_stdout(sys.stderr):  # d3rlpy logs to stdout; stdout holds only the JSON line
            d3rlpy_rate, d3rlpy_added = measure_d3rlpy(store, ref, budget["rows"], budget["rounds"])
            import d3rlpy
    import torchrl

    print(json.dumps({
        "benchmark": "frameworks", "quick": quick, **budget, "batch": BATCH,
        "transitions_per_second": {"rlstore_replay_loader_2_workers": round(replay["loader"]),
                                   "rlstore_replay_2_workers_batch_by_batch": round(replay["workers"]),
                                   "rlstore_replay_in_process": round(replay["in_process"]),
                                   "rlstore_epoch_2_workers": round(rlstore_rate),
                                   "rlstore_epoch_2_persistent_workers": round(persistent_rate),
                                   "torchrl_lazymemmap_random": round(torchrl_rate),
                                   "d3rlpy_replay_buffer": round(d3rlpy_rate)},
        "ratio_vs_torchrl": round(replay["loader"] / torchrl_rate, 3),
        "target_ratio_vs_torchrl": TARGET_RATIO,
        "ratio_vs_d3rlpy": round(replay["loader"] / d3rlpy_rate, 2),
        "replay_batch_by_batch_ratio_vs_torchrl": round(replay["workers"] / torchrl_rate, 3),
        "replay_in_process_ratio_vs_torchrl": round(replay["in_process"] / torchrl_rate, 3),
        "epoch_ratio_vs_torchrl": round(rlstore_rate / torchrl_rate, 3),
        "epoch_persistent_workers_ratio_vs_torchrl": round(persistent_rate / torchrl_rate, 3),
        "memory_mb": {"rlstore_replay_rss_added": round(replay["rss_added"] / 2**20, 1),
                      "rlstore_replay_columns": round(replay["columns"] / 2**20, 1),
                      "rlstore_replay_loader_2_workers_uss": round(replay["loader_workers_uss"] / 2**20, 1),
                      "rlstore_replay_batch_by_batch_2_workers_uss": round(replay["workers_uss"] / 2**20, 1),
                      "rlstore_epoch_peak_pss_with_workers": round(rlstore_peak / 2**20, 1),
                      "torchrl_rss_added": round(torchrl_added / 2**20, 1),
                      "torchrl_memmap_on_disk": round(torchrl_disk / 2**20, 1),
                      "d3rlpy_rss_added": round(d3rlpy_added / 2**20, 1)},
        "versions": {"torch": torch.__version__, "torchrl": torchrl.__version__, "d3rlpy": d3rlpy.__version__},
        "tensorflow_imported": any(m.startswith("tensorflow") for m in sys.modules),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }))


if __name__ == "__main__":
    main()
