"""The ingest pipeline: logged episodes in any supported format → a new version of a dataset.

    read sources → parse into episodes → check schema and RLDS rules → encode → write shards
    → (driver) TFDS metadata → publish

The driver derives the schema from the first episode (and checks it against the dataset's
latest version before any work starts), runs the Beam pipeline, then names the shards, writes
the TFDS metadata and publishes from the staging area. Nothing is visible until the publish;
any failure removes the staging area.

Runner choice is Beam's: arguments after `--` on the command line are handed to
`PipelineOptions` unchanged. Without a `--runner`, the DirectRunner runs in multi-processing
mode on every core.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

from pipelines.sources import WorkItem, detect_format, expand_paths, get_format
from pipelines.transforms import SOURCES_TAG, ReadEpisodes, WriteShards, write_result
from rlstore.errors import BadInputError, StoreError
from rlstore.manifest import Manifest
from rlstore.names import validate_name
from rlstore.schema import Schema
from rlstore.segment import finish_segment
from rlstore.store import Store

PIPELINE_NAME = "rlstore.ingest"


def default_beam_args(beam_args: Sequence[str]) -> list[str]:
    """The user's Beam arguments, plus multi-process DirectRunner defaults when no runner is set."""
    args = list(beam_args)
    if not any(a.startswith("--runner") for a in args):
        if not any(a.startswith("--direct_running_mode") for a in args):
            args.append("--direct_running_mode=multi_processing")
        if not any(a.startswith("--direct_num_workers") for a in args):
            args.append(f"--direct_num_workers={os.cpu_count() or 1}")
    return args


def plan(paths: Sequence[str], format_name: str = "auto",
         format_options: Mapping[str, Any] | None = None) -> tuple[Any, list[WorkItem], dict[str, Any]]:
    """Resolves inputs into a source format, its work items and its run metadata (reads no episodes)."""
    resolved = expand_paths(paths)
    if format_name == "auto":
        source_format = detect_format(resolved, format_options)
    else:
        source_format = get_format(format_name, format_options)
    items = source_format.work_items(resolved)
    unique = list({json.dumps(item, sort_keys=True): item for item in items}.values())
    return source_format, unique, source_format.run_metadata(resolved)


def derive_schema(source_format, items: Sequence[WorkItem]) -> Schema:
    """The schema of the first episode found; every other episode must match it."""
    for item in items:
        for where, episode in source_format.read(item):
            return Schema.derive(episode, where)
    raise BadInputError("the input holds no episodes")


def ingest(
    store: Store,
    dataset: str,
    paths: Sequence[str],
    format: str = "auto",
    beam_args: Sequence[str] = (),
    progress: bool = False,
    max_shard_bytes: int = 256 << 20,
    format_options: Mapping[str, Any] | None = None,
) -> Manifest:
    """Ingests logs into `dataset` as a new version (the first, or an append) and returns its manifest.

    `format_options` are keyword arguments of the source format (see `pipelines.sources`).
    """
    validate_name(dataset)
    format_options = dict(format_options or {})
    source_format, items, run_metadata = plan(paths, format, format_options)
    schema = derive_schema(source_format, items)
    if store.versions(dataset):
        problem = store.manifest(dataset).schema.difference(schema)
        if problem:
            raise StoreError(f"cannot append to {dataset}: {problem}")
    args = default_beam_args(beam_args)
    with store.staging(dataset) as staging:
        segment_dir = staging.new_segment_dir()
        progress_dir = staging.path / "progress"
        progress_dir.mkdir()
        result_path = staging.path / "result.json"
        pipeline = _build(source_format.name, format_options, items, schema, segment_dir, result_path, progress_dir,
                          args, max_shard_bytes)
        _run(pipeline, len(items), progress_dir if progress else None, staging.path / "beam.log")
        result = json.loads(result_path.read_text())
        if not result["shards"]:
            raise BadInputError("the input holds no episodes")
        lineage = {
            "pipeline": PIPELINE_NAME,
            "format": source_format.name,
            "options": {"inputs": [str(p) for p in paths], "beam_args": list(beam_args),
                        "max_shard_bytes": max_shard_bytes, "format_options": format_options},
            "sources": result["sources"],
            "run_metadata": run_metadata,
        }
        record = finish_segment(segment_dir, dataset, schema, result["shards"], lineage)
        return store.publish(dataset, staging, [record], schema, lineage)


def _build(format_name, format_options, items, schema, segment_dir, result_path, progress_dir, args, max_shard_bytes):
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    options = PipelineOptions(args)
    pipeline = beam.Pipeline(options=options)
    read = (
        pipeline
        | "WorkItems" >> beam.Create(items)
        | "ReadEpisodes" >> beam.ParDo(ReadEpisodes(format_name, format_options, schema.to_json(), str(progress_dir))).with_outputs(
            SOURCES_TAG, main="episodes")
    )
    shards = read.episodes | "WriteShards" >> beam.ParDo(WriteShards(str(segment_dir), max_shard_bytes))
    (
        pipeline
        | "Once" >> beam.Create([None])
        | "WriteResult" >> beam.Map(write_result, path=str(result_path),
                                    shards=beam.pvalue.AsList(shards), sources=beam.pvalue.AsList(read[SOURCES_TAG]))
    )
    return pipeline


def _run(pipeline, total: int, progress_dir: Path | None, log_path: Path) -> None:
    """Runs the pipeline to completion, with a progress bar over work items if asked.

    Beam's worker subprocesses log to the inherited stderr; it is pointed at `log_path` for the
    run so the terminal shows only the progress bar, and the log's tail is shown if the
    pipeline fails for a reason that is not bad input.
    """
    failure: list[BaseException] = []

    def target() -> None:
        try:
            pipeline.run().wait_until_finish()
        except BaseException as error:  # re-raised on the calling thread
            failure.append(error)

    terminal = os.fdopen(os.dup(2), "w")
    bar = None
    if progress_dir is not None:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="file", desc="ingest", dynamic_ncols=True, file=terminal)
    with open(log_path, "w") as log:
        os.dup2(log.fileno(), 2)
        try:
            worker = threading.Thread(target=target, daemon=True)
            worker.start()
            while worker.is_alive():
                worker.join(0.25)
                if bar is not None:
                    bar.update(len(os.listdir(progress_dir)) - bar.n)
        finally:
            os.dup2(terminal.fileno(), 2)
    if bar is not None:
        if not failure:
            bar.update(total - bar.n)
        bar.close()
    terminal.close()
    if failure:
        error = failure[0]
        bad_input = BadInputError.from_exception(error)
        if bad_input is not None:
            raise bad_input
        tail = "".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-20:])
        raise RuntimeError(f"the Beam pipeline failed: {error}\n--- last lines of the Beam log ---\n{tail}") from error
