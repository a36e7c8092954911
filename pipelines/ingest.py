"""The ingest pipeline: logged episodes in any supported format → a new version of a dataset.

    read sources → parse into episodes → check schema and RLDS rules → encode → write shards
    → quality report (Beam combiner) → (driver) TFDS metadata → publish

The driver derives the schema from the first episode (and checks it against the dataset's
latest version before any work starts), runs the Beam pipeline (pipelines/transforms.py),
then names the shards, writes the TFDS metadata and publishes from the staging area with the
quality report in the manifest. Nothing is visible until the publish; any failure removes the
staging area.

Bad input: with on_error="fail" (the default) the first bad episode stops the ingest with its
file/episode/step/field and nothing is published. With on_error="skip" bad episodes (and input
files a reader cannot even list) become lines of `rejects.jsonl` in the new segment's
directory, recorded in the report with its sha256, and the rest is published.

Runner choice is Beam's: arguments after `--` on the command line are handed to
`PipelineOptions` unchanged. Without a `--runner`, the DirectRunner runs on every core: in
multi-processing mode for inputs of SMALL_INPUT_BYTES or more, and in this process, on threads,
for smaller ones. A worker process costs about 1.5 CPU seconds to start (Python, Beam, the
source's libraries), more than all the work of a small ingest (1,000 npz episodes of 200 steps:
1.5 CPU s in this process, 4.6 with two worker processes); threads still overlap the input and
fsync waits. On the DaskRunner each batch is its own Dask task unless
`--dask_npartitions`/`--dask_partition_size` say otherwise.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from rlstore.pipelines.notes import pop_notes
from rlstore.pipelines.quality import add_rejects
from rlstore.pipelines.sources import WorkItem, detect_format, expand_paths, get_format, input_bytes
from rlstore.pipelines.sources.stacked import FrameStacked, detected_stack, stack_metadata
from rlstore.pipelines.transforms import ON_ERROR, IngestBatch, ResultFn, reject_line, reject_order, write_result
from rlstore.errors import BadInputError, LocatedError, PipelineError
from rlstore.images import ImageEncoding
from rlstore.manifest import Manifest
from rlstore.names import validate_name
from rlstore.schema import Schema
from rlstore.publishing import check_appendable, dataset_shard_format, publish_segment
from rlstore.shard_formats import PARQUET, TFRECORD, check_format, frame_encoding
from rlstore.shard_targets import BucketShardTarget, ShardTarget
from rlstore.store import Store

PIPELINE_NAME = "rlstore.ingest"
REJECTS_FILE = "rejects.jsonl"
MAX_BATCHES = 64
SMALL_INPUT_BYTES = 64 << 20
THREAD_BATCHES = 2  # per thread of the in-process runner: each batch writes (and fsyncs) its own shards
_DASK_PARTITIONING = ("--dask_npartitions", "--dask_partition_size")


def default_beam_args(beam_args: Sequence[str], input_bytes: int | None = None) -> list[str]:
    """The user's Beam arguments, plus defaults: the DirectRunner on every core when no runner is
    set (in worker processes, or on threads in this process for an input smaller than
    SMALL_INPUT_BYTES; see the module docstring), and one Dask task per batch on the DaskRunner
    (whose own default packs 128 elements into a partition, i.e. everything into one task on one
    worker)."""
    args = list(beam_args)
    if not any(a.startswith("--runner") for a in args):
        if not any(a.startswith("--direct_running_mode") for a in args):
            small = input_bytes is not None and input_bytes < SMALL_INPUT_BYTES
            args.append(f"--direct_running_mode={'multi_threading' if small else 'multi_processing'}")
        if not any(a.startswith("--direct_num_workers") for a in args):
            args.append(f"--direct_num_workers={os.cpu_count() or 1}")
    elif any(a.startswith("--runner") and "DaskRunner" in a for a in args):
        if not any(a.startswith(_DASK_PARTITIONING) for a in args):
            args.append("--dask_partition_size=1")
    return args


def max_batches(args: Sequence[str]) -> int:
    """How many batches to cut the work into: MAX_BATCHES for worker processes and clusters, a
    few per thread for the in-process runner, where more batches would only mean more shards."""
    if any(a.startswith("--runner") for a in args):
        return MAX_BATCHES
    mode = next((a.split("=", 1)[1] for a in args if a.startswith("--direct_running_mode=")), "")
    if mode not in ("in_memory", "multi_threading"):
        return MAX_BATCHES
    workers = next((a.split("=", 1)[1] for a in args if a.startswith("--direct_num_workers=")), "1")
    return THREAD_BATCHES * max(int(workers) if workers.isdigit() else 1, 1)


def batches(items: Sequence[WorkItem], max_batches: int = MAX_BATCHES) -> list[list[WorkItem]]:
    """Consecutive work items in at most `max_batches` batches of near-equal count.

    A batch is one DoFn call and writes its own shards (see pipelines/transforms.py), so
    batching keeps a thousand small files from becoming a thousand shards, while 64 batches
    are still enough to keep a cluster of a few dozen worker threads busy.
    """
    count = min(len(items), max_batches)
    if not count:
        return []
    bounds = [round(i * len(items) / count) for i in range(count + 1)]
    return [list(items[bounds[i]:bounds[i + 1]]) for i in range(count)]


def plan(paths: Sequence[str], format_name: str = "auto", format_options: Mapping[str, Any] | None = None,
         on_error: str = "fail") -> tuple[Any, list[WorkItem], dict[str, Any], list[dict[str, Any]]]:
    """Resolves inputs into a source format, its work items, its run metadata and the input files
    rejected while listing them (only with on_error="skip"). Reads no episodes."""
    resolved = expand_paths(paths)
    if format_name == "auto":
        source_format = detect_format(resolved, format_options)
    else:
        source_format = get_format(format_name, format_options)
    rejects: list[dict[str, Any]] = []
    if on_error == "skip":
        items = []
        for path in resolved:
            try:
                items.extend(source_format.work_items([path]))
            except BadInputError as error:
                rejects.append(reject_line(error))
    else:
        items = source_format.work_items(resolved)
    unique = list({json.dumps(item, sort_keys=True): item for item in items}.values())
    return source_format, unique, source_format.run_metadata(resolved), rejects


def derive_schema(source_format, items: Sequence[WorkItem], on_error: str = "fail") -> Schema:
    """The schema of the first episode found (with on_error="skip", the first good one); every
    other episode must match it."""
    for item in items:
        try:
            for where, episode in source_format.read(item):
                pop_notes(episode)
                try:
                    schema = Schema.derive(episode, where)
                    schema.check(episode, where)
                    return schema
                except BadInputError:
                    if on_error != "skip":
                        raise
        except BadInputError:
            if on_error != "skip":
                raise
    raise BadInputError("the input holds no episodes" if on_error != "skip" else "the input holds no good episodes")


def ingest(
    store: Store,
    dataset: str,
    paths: Sequence[str],
    format: str = "auto",
    beam_args: Sequence[str] = (),
    progress: bool = False,
    max_shard_bytes: int = 256 << 20,
    format_options: Mapping[str, Any] | None = None,
    on_error: str = "fail",
    image_encodings: Mapping[str, str] | None = None,
    shard_format: str | None = None,
) -> Manifest:
    """Ingests logs into `dataset` as a new version (the first, or an append) and returns its manifest.

    `format_options` are keyword arguments of the source format (see `rlstore.pipelines.sources`).
    `on_error` is "fail" or "skip" (see the module docstring). The manifest's `report` holds the
    quality report of the episodes this version adds. `image_encodings` chooses how raw uint8
    image step fields are stored: `{"observation/wrist": "jpeg:90", "*": "zlib"}` ('*': every
    other image field; encodings `png` (the default), `jpeg[:QUALITY]`, `zlib`). Images the
    source already encoded (TFDS/RLDS PNG or JPEG) are always kept byte for byte.

    `shard_format` ("tfrecord" or "parquet", `rlstore.shard_formats`) is the container of the
    new segment's shards. By default: the dataset's own when appending; for a new dataset,
    parquet when observations are frame stacks stored as single frames (dqn_replay,
    `frame_stack`, or stacks detected in the first episode: `rlstore.pipelines.sources.stacked`),
    whose frames are then stored raw and compressed an episode at a time, and tfrecord otherwise.
    `format_options={"frame_stack": 1}` stores observations whole without looking for stacks.
    """
    validate_name(dataset)
    if on_error not in ON_ERROR:
        raise BadInputError(f"on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
    format_options = dict(format_options or {})
    source_format, items, run_metadata, plan_rejects = plan(paths, format, format_options, on_error)
    if getattr(source_format, "frame_stack", None) is None and "frame_stack" not in format_options:
        detected = detected_stack(source_format, items)
        if detected is not None:  # the workers rebuild the format from these options
            format_options.update(frame_stack=detected, frame_stack_detected=True)
            source_format = FrameStacked(source_format, detected, detected=True)
            run_metadata = {**run_metadata, **stack_metadata(detected, detected=True)}
    schema = derive_schema(source_format, items, on_error)
    frame_stack = getattr(source_format, "frame_stack", None)
    shard_format = _shard_format(store, dataset, shard_format, framed=frame_stack is not None)
    if frame_stack is not None:
        schema = schema.with_frames("observation", frame_stack, frame_encoding(shard_format))
    image_encodings = dict(image_encodings or {})
    if image_encodings:
        schema = schema.with_image_encodings({field: ImageEncoding.parse(text) for field, text in image_encodings.items()})
    check_appendable(store, dataset, schema)
    args = default_beam_args(beam_args, input_bytes(expand_paths(paths)))
    with _no_empty_dataset_left(store, dataset), store.staging(dataset) as staging:
        segment_dir = staging.new_segment_dir()
        progress_dir = None
        if progress:  # workers mark finished items here; without a bar nobody counts them
            progress_dir = staging.path / "progress"
            progress_dir.mkdir()
        target = staging.shard_target(segment_dir)  # in a bucket, workers upload their shards there
        fn = IngestBatch(source_format.name, format_options, schema.to_json(), target, max_shard_bytes,
                         on_error, str(progress_dir) if progress_dir else None, shard_format)
        _run(_build(fn, schema, batches(items, max_batches(args)), target, args), len(items), progress_dir)
        raw = target.result()
        result = json.loads(raw) if raw is not None else {"shards": [], "rejects": []}
        rejects = sorted(plan_rejects + result["rejects"], key=reject_order)
        if not result["shards"]:
            raise BadInputError(f"every episode was rejected; the first: {rejects[0]['error']}" if rejects
                                else "the input holds no episodes")
        lineage = {
            "pipeline": PIPELINE_NAME,
            "format": source_format.name,
            "options": {"inputs": [str(p) for p in paths], "beam_args": list(beam_args),
                        "max_shard_bytes": max_shard_bytes, "shard_format": shard_format,
                        "format_options": format_options, "on_error": on_error,
                        **({"image_encodings": image_encodings} if image_encodings else {})},
            "sources": result["sources"],
            "run_metadata": run_metadata,
        }
        rejects_file = _write_rejects(segment_dir, rejects)
        report = {**add_rejects(result["report"], rejects, rejects_file), "segment": segment_dir.name}
        return publish_segment(store, dataset, staging, segment_dir, schema, result["shards"], lineage, report)


def _shard_format(store: Store, dataset: str, chosen: str | None, framed: bool) -> str:
    """The shard format of the new segment (see `ingest`); an append keeps the dataset's."""
    try:
        chosen = chosen and check_format(chosen)
    except ValueError as error:
        raise BadInputError(str(error)) from None
    existing = dataset_shard_format(store, dataset)
    if chosen and existing and chosen != existing:
        raise BadInputError(f"cannot append {chosen} shards to {dataset}: its versions are stored as {existing} shards "
                            "and a version keeps one shard format (stock TFDS reads it whole)")
    return chosen or existing or (PARQUET if framed else TFRECORD)


@contextlib.contextmanager
def _no_empty_dataset_left(store: Store, dataset: str) -> Iterator[None]:
    """A failed first ingest removes the dataset directory it created (it holds nothing)."""
    first = not store.versions(dataset)
    try:
        yield
    except BaseException:
        if first:
            store.remove_if_empty(dataset)
        raise


def _write_rejects(segment_dir: Path, rejects: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Writes rejects.jsonl into the segment (it moves with it); returns its manifest entry."""
    if not rejects:
        return None
    data = "".join(json.dumps(line, sort_keys=True) + "\n" for line in rejects).encode()
    (segment_dir / REJECTS_FILE).write_bytes(data)
    return {"path": f"segments/{segment_dir.name}/{REJECTS_FILE}", "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data), "count": len(rejects)}


def _build(fn: IngestBatch, schema: Schema, work: list[list[WorkItem]], target: ShardTarget | BucketShardTarget,
           args: Sequence[str]):
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    try:
        pipeline = beam.Pipeline(options=PipelineOptions(list(args)))
    except (ValueError, ImportError) as error:  # e.g. an unknown --runner
        raise PipelineError(f"cannot start the Beam pipeline ({' '.join(args)}): {error}") from None
    (
        pipeline  # batches as JSON text: Beam infers no types over every work item
        | "Batches" >> beam.Create([json.dumps(batch) for batch in work])
        | "Ingest" >> beam.ParDo(fn)
        | "Result" >> beam.CombineGlobally(ResultFn(schema.to_json())).without_defaults()
        | "WriteResult" >> beam.Map(write_result, target=target)
    )
    return pipeline


def _run(pipeline, total: int, progress_dir: Path | None) -> None:
    """Runs the pipeline to completion, with a progress bar over work items if asked.

    Beam's worker subprocesses (and a Dask client) log to the inherited stderr; it is pointed at
    a log file for the run so the terminal shows only the progress bar. The log lives in the
    system's temporary directory, never in the store: on a full store disk, workers and the
    runner blocked writing their log and the pipeline hung forever. It is deleted unless the
    pipeline fails for a reason that is neither bad input nor storage, and then named in the
    error. Progress counts marker files that workers touch in the driver's staging directory, so
    it advances with workers that see the driver's file system (the DirectRunner, a local Dask
    cluster); workers on other hosts skip the markers and the bar jumps to the end when done.
    """
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result = pipeline.run()
            try:
                result.wait_until_finish()
            finally:
                client = getattr(result, "client", None)  # the DaskRunner leaves its distributed.Client open
                if client is not None:
                    client.close()
        except BaseException as error:  # re-raised on the calling thread
            failure.append(error)

    terminal = os.fdopen(os.dup(2), "w")
    bar = None
    if progress_dir is not None:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="file", desc="ingest", dynamic_ncols=True, file=terminal)
    handle, log_path = tempfile.mkstemp(prefix="rlstore-ingest-", suffix=".log")
    # Worker processes write to file descriptor 2; on the in-process runner Beam's own logging
    # writes to sys.stderr, which need not be descriptor 2 (a test's capture, an IDE): both go to the log.
    with os.fdopen(handle, "w") as log, contextlib.redirect_stderr(log):
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
    located = LocatedError.from_exception(failure[0]) if failure else None
    if not failure or located is not None:
        os.unlink(log_path)
    if located is not None:
        raise located
    if failure:
        raise PipelineError(f"the Beam pipeline failed: {_first_line(failure[0])} (Beam's log: {log_path})") from failure[0]


def _first_line(error: BaseException) -> str:
    """The gist of a runner's exception, whose message may hold a whole worker traceback."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:400]
