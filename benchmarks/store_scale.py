"""Store metadata at scale: many small commits, then opening, describing and reading versions.

Workload: a dataset that receives COMMITS one-segment versions (`--quick`: 1,000; full: 10,000),
the way write-back commits; each segment is a real TFDS directory of 4 catch-sized episodes
(copied from one template segment, so the benchmark measures the store, not the encoder). Every
commit goes through `Store.publish`. Reported:
  metadata bytes per commit   version file plus the new segment lists each commit wrote, over
                              the first and the last 10% of commits: the median (a typical
                              commit) and the mean (with the merges of segment lists: a level-k
                              merge rewrites 10**k records once per 10**k commits)
  baseline                    the bytes of a format-1 manifest of the last version (what each
                              commit wrote before format 2: every segment of the history)
  open                        `Store.manifest` of the first, middle and last version (median of
                              5, warm cache); `segments` adds reading the version's segment lists
  info                        `rlstore.info.describe` of the latest version (what `info --json`
                              prints, every segment directory included)
  read                        episodes/s of stock TFDS (`Store.load`) over a 1,000-segment
                              version and over the version `Store.compact` made of it

Prints one JSON line on stdout; progress goes to stderr. Run under `flock /work/.heavy.lock`.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import choose_budget, log  # noqa: E402

from rlstore.quiet import silence  # noqa: E402

silence()  # before TensorFlow

import numpy as np  # noqa: E402

from rlstore import segment_lists  # noqa: E402
from rlstore.episode import make_episode  # noqa: E402
from rlstore.info import describe  # noqa: E402
from rlstore.schema import Schema  # noqa: E402
from rlstore.segment import ShardWriter, finish_segment  # noqa: E402
from rlstore.store import Store  # noqa: E402

EPISODES_PER_SEGMENT = 4
READ_SEGMENTS = 1000


def _episode(seed: int):
    rng = np.random.default_rng(seed)
    length = 20
    discount = np.ones(length, np.float32)
    discount[-2] = 0.0
    return make_episode(observation=rng.normal(size=(length, 50)).astype(np.float32),
                        action=rng.integers(0, 3, size=length), reward=rng.normal(size=length).astype(np.float32),
                        discount=discount, is_terminal=True, episode_metadata={"episode_id": np.int64(seed)})


def _template(store: Store, name: str, directory: Path) -> tuple[Schema, dict]:
    """One real segment (TFDS directory and record), built once and copied for every commit."""
    episodes = [_episode(seed) for seed in range(EPISODES_PER_SEGMENT)]
    schema = Schema.derive(episodes[0])
    directory.mkdir(parents=True)
    writer = ShardWriter(directory)
    for episode in episodes:
        writer.write(schema.encode(episode), schema.check(episode), float(np.sum(episode["steps"]["reward"])))
    return schema, finish_segment(directory, name, schema, writer.close(), {"pipeline": "store_scale"})


def _commit(store: Store, name: str, schema: Schema, template: Path, record: dict, index: int):
    with store.staging(name) as staging:
        segment = staging.new_segment_dir()
        segment.rmdir()
        shutil.copytree(template, segment)
        lineage = {"pipeline": "store_scale", "run_episodes": [index * EPISODES_PER_SEGMENT,
                                                               (index + 1) * EPISODES_PER_SEGMENT]}
        return store.publish(name, staging, [{**record, "id": segment.name, "path": str(segment),
                                              "lineage": lineage}], schema, lineage)


def _median_seconds(action, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _read_rate(store: Store, ref: str) -> float:
    start = time.perf_counter()
    count = sum(1 for _ in store.load(ref))
    return count / (time.perf_counter() - start)


def main() -> None:
    quick, budget = choose_budget(__doc__, {"commits": 1000}, {"commits": 10000})
    commits = budget["commits"]
    root = Path(tempfile.mkdtemp(prefix="store_scale-", dir=os.environ.get("TMPDIR")))
    try:
        store = Store(root / "store")
        schema, record = _template(store, "scale", root / "template")
        seen: set[str] = set()
        per_commit, per_version_file = [], []
        started = time.perf_counter()
        for index in range(commits):
            manifest = _commit(store, "scale", schema, root / "template", record, index)
            written = Path(manifest.path).stat().st_size
            per_version_file.append(written)
            for reference in manifest.data["segment_lists"]:
                if reference["sha256"] not in seen:
                    seen.add(reference["sha256"])
                    written += store.segment_list_path("scale", reference["sha256"]).stat().st_size
            per_commit.append(written)
            if (index + 1) % max(commits // 10, 1) == 0:
                log(f"{index + 1}/{commits} commits, {time.perf_counter() - started:.0f} s")
        commit_seconds = time.perf_counter() - started
        window = max(commits // 10, 1)
        latest = store.manifest("scale")
        format1_bytes = len(json.dumps({**latest.data, "segments": latest.segments}, sort_keys=True))

        versions = store.versions("scale")
        picks = {"first": versions[0], "middle": versions[len(versions) // 2], "last": versions[-1]}
        open_ms = {k: 1e3 * _median_seconds(lambda v=v: Store(store.root).manifest(f"scale@{v}"))
                   for k, v in picks.items()}
        segments_ms = {k: 1e3 * _median_seconds(lambda v=v: Store(store.root).manifest(f"scale@{v}").segments)
                       for k, v in picks.items()}
        info_ms = 1e3 * _median_seconds(lambda: describe(Store(store.root), "scale"), repeats=3)

        read_version = READ_SEGMENTS if commits >= READ_SEGMENTS else versions[-1]
        if read_version != versions[-1]:  # compaction works on the latest version: rebuild one that ends here
            log(f"building a {READ_SEGMENTS}-segment dataset to read")
            for index in range(READ_SEGMENTS):
                _commit(store, "read", schema, root / "template", record, index)
            read_name = "read"
        else:
            read_name = "scale"
        source = store.manifest(read_name)
        log(f"compacting {read_name}@{source.version} ({source.num_segments} segments)")
        start = time.perf_counter()
        compacted = store.compact(read_name)
        compact_seconds = time.perf_counter() - start
        log("reading")
        many = _read_rate(store, f"{read_name}@{source.version}")
        few = _read_rate(store, f"{read_name}@{compacted.version}")
        metadata_total = sum(p.stat().st_size for sub in ("versions", segment_lists.DIRECTORY)
                             for p in (store.dataset_dir("scale") / sub).iterdir())
        data_total = sum(p.stat().st_size for p in (store.dataset_dir("scale") / "segments").rglob("*") if p.is_file())
        print(json.dumps({
            "benchmark": "store_scale", "quick": quick, "commits": commits,
            "commits_per_s": round(commits / commit_seconds, 1),
            "metadata_bytes_per_commit": {
                "first_10pct": {"median": round(statistics.median(per_commit[:window])),
                                "mean": round(statistics.mean(per_commit[:window]))},
                "last_10pct": {"median": round(statistics.median(per_commit[-window:])),
                               "mean": round(statistics.mean(per_commit[-window:]))},
                "all": {"mean": round(statistics.mean(per_commit)), "max": max(per_commit)}},
            "version_file_bytes": {"first": per_version_file[0], "last": per_version_file[-1]},
            "baseline_format1_bytes_per_commit_at_end": format1_bytes,
            "ratio_baseline_to_last_mean": round(format1_bytes / statistics.mean(per_commit[-window:]), 1),
            "metadata_bytes_total": metadata_total, "data_bytes_total": data_total,
            "open_ms": {k: round(v, 2) for k, v in open_ms.items()},
            "open_with_segments_ms": {k: round(v, 2) for k, v in segments_ms.items()},
            "info_ms": round(info_ms, 1),
            "read": {"segments": source.num_segments, "compacted_segments": compacted.num_segments,
                     "compact_s": round(compact_seconds, 2),
                     "episodes_per_s": round(many, 1), "compacted_episodes_per_s": round(few, 1),
                     "ratio": round(few / many, 2)},
            "load_avg": [round(x, 2) for x in os.getloadavg()],
        }))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
