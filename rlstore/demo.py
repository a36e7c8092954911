"""The main job on a built-in default: demonstrations → logs → Beam ingest → a dataset.

This is what `make demo` (the README's first command) runs. Each stage is a public function
of its own module; this file only strings them together and tells the user what happened.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Sequence

from rlstore.store import Store


def dataset_name_for(env_spec: str, policy: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", f"{env_spec}_{policy}").strip("_")


def run_main_job(out: str | Path, env_spec: str = "catch", episodes: int = 100, seed: int = 0,
                 beam_args: Sequence[str] = ()) -> dict:
    """Runs every stage under `out` and returns a summary (also written to out/summary.json)."""
    from datasets.demonstrations import record_npz_logs
    from pipelines.ingest import ingest
    from rlstore.info import describe

    out = Path(out)
    store = Store(out / "store")
    name = dataset_name_for(env_spec, "expert")
    started = time.time()

    _stage(1, f"recording {episodes} expert episodes of {env_spec} as npz logs")
    logs = out / "logs" / f"{name}-seed{seed}"
    record_npz_logs(env_spec, "expert", episodes, logs, seed=seed)
    print(f"    {len(list(logs.glob('*.npz')))} files in {logs}")

    _stage(2, f"ingesting them with the Beam pipeline into {store.root}")
    manifest = ingest(store, name, [str(logs)], format="npz", beam_args=beam_args, progress=True)
    print(f"    published {name}@{manifest.version}")

    _stage(3, "dataset info")
    info = describe(store, f"{name}@{manifest.version}")
    print(json.dumps({k: info[k] for k in ("name", "version", "num_episodes", "num_steps", "features", "stats")}, indent=1))

    summary = {"dataset": f"{name}@{manifest.version}", "store": str(store.root), "logs": str(logs),
               "episodes": manifest.num_episodes, "steps": manifest.num_steps, "seconds": round(time.time() - started, 1)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"done in {summary['seconds']} s; summary in {out / 'summary.json'}")
    return summary


def _stage(number: int, text: str) -> None:
    print(f"[{number}] {text}", flush=True)
