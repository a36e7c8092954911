"""A store in S3 against the same store on local disk: ingest steps/s and cold-read steps/s.

Workload: `benchmarks/ingest.py`'s npz logs (episodes of 200 steps, float32[4] observations).
The S3 side is a moto server (`moto[server]`) on 127.0.0.1 in this process, reached through
AWS_ENDPOINT_URL like any S3 endpoint: the figures are what rlstore's object-store path costs
(uploads, conditional creates, listings, sha256-checked fetches into the read cache), not the
network, which a real bucket adds. moto itself is Python and shares the CPU with the ingest.
  * ingest: `ingest(Store(root), ...)` into a new dataset, default runner, best of `rounds`
    (`benchmarks/ingest.py --only s3` prints the same figure);
  * cold read: every episode of the version through `rlstore.numpy.episodes` (no TensorFlow),
    the S3 side from an empty read cache, so every shard is fetched.
`ingest.s3_vs_local_ingest` and `cold_read.ratio` are S3 over local (1.0 = no cost). Prints one JSON line on stdout; progress on stderr.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import choose_budget, log  # noqa: E402
from benchmarks.ingest import s3_vs_local_ingest, start_s3, timed, write_logs  # noqa: E402

from rlstore.quiet import silence  # noqa: E402

silence()

from rlstore.numpy import episodes  # noqa: E402
from rlstore.store import Store  # noqa: E402

QUICK = {"episodes": 200, "steps": 200, "rounds": 1}
FULL = {"episodes": 1000, "steps": 200, "rounds": 2}


def read_all(root: str) -> dict:
    def read() -> int:
        return sum(len(e["steps"]["reward"]) for e in episodes(Store(root), "bench", repeat=False))
    return timed(read)


def main() -> None:
    quick, budget = choose_budget(__doc__, QUICK, FULL)
    work = Path(tempfile.mkdtemp(prefix="rlstore-bench-s3-"))
    report = {"benchmark": "s3_store", "quick": quick, **budget, "load_before": os.getloadavg()}
    server = start_s3()
    try:
        with contextlib.redirect_stdout(sys.stderr):
            logs = write_logs(work / "logs", budget["episodes"], budget["steps"])
            report["ingest"], url = s3_vs_local_ingest(work, logs, budget["rounds"])
            os.environ["RLSTORE_CACHE"] = str(work / "cold")
            log("cold reads")
            read_local, read_remote = read_all(str(work / "s3-local-0")), read_all(url)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    def rate(run: dict) -> float:
        return run["steps"] / run["seconds"]
    report["cold_read"] = {"local_steps_per_s": round(rate(read_local)), "s3_steps_per_s": round(rate(read_remote)),
                           "ratio": round(rate(read_remote) / rate(read_local), 3)}
    report["load_after"] = os.getloadavg()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
