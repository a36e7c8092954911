"""A local Dask cluster for Beam's DaskRunner: one `dask scheduler` and single-threaded `dask worker`
processes on 127.0.0.1. The tests and the ingest benchmark use it, and so can a user trying the
DaskRunner on one machine before pointing `--dask_client_address` at a real cluster."""
from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

STARTUP_SECONDS = 120


@contextlib.contextmanager
def local_dask_cluster(workers: int, directory: Path) -> Iterator[str]:
    """`dask scheduler` and `workers` single-threaded `dask worker` processes on 127.0.0.1; yields
    the scheduler's address and stops them all afterwards."""
    from distributed import Client

    directory.mkdir(parents=True, exist_ok=True)
    scheduler_file = directory / "scheduler.json"
    scheduler_file.unlink(missing_ok=True)
    dask = str(Path(sys.executable).with_name("dask"))
    processes: list[subprocess.Popen] = []
    with open(directory / "cluster.log", "a") as sink:
        def start(*args: str) -> None:
            processes.append(subprocess.Popen([dask, *args], stdout=sink, stderr=subprocess.STDOUT))

        try:
            start("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file",
                  str(scheduler_file))
            deadline = time.monotonic() + STARTUP_SECONDS
            while (address := _scheduler_address(scheduler_file)) is None:
                if time.monotonic() > deadline or processes[0].poll() is not None:
                    raise RuntimeError(f"the dask scheduler did not start (log: {directory / 'cluster.log'})")
                time.sleep(0.2)
            for index in range(workers):
                start("worker", address, "--name", f"w{index}", "--nthreads", "1", "--no-nanny", "--host", "127.0.0.1",
                      "--no-dashboard")
            with Client(address, timeout=STARTUP_SECONDS) as client:
                client.wait_for_workers(workers, timeout=STARTUP_SECONDS)
            yield address
        finally:
            for process in reversed(processes):
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _scheduler_address(scheduler_file: Path) -> str | None:
    """The address in the scheduler's file, or None while it is missing or half-written (the
    scheduler writes it in place, so it exists empty for a moment)."""
    try:
        return json.loads(scheduler_file.read_text())["address"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return None
