"""Checking a published version against its manifest: bytes, schema and RLDS rules.

The version's own file must match its checksum (format 2) and the hash its successor recorded;
its segment lists must match the hashes the version names, and their counts its totals. Every
shard and metadata file is re-hashed against the sha256 recorded at publish time (a damaged
TFRecord or parquet shard is a finding naming the file) and must be named for the shard format
its segment declares; the TFDS features of each segment must match the manifest's schema; and
every episode is decoded and checked against the schema and RLDS's alignment rules, every
stored PNG/JPEG image decoded.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from rlstore.confinement import UnsafePathError
from rlstore.errors import BadInputError, Location, StoreError
from rlstore.images import EncodedImages, undecodable
from rlstore.manifest import Manifest
from rlstore.names import DatasetRef
from rlstore.nest import flatten
from rlstore.shard_formats import file_format, segment_format
from rlstore.store import Store, sha256_file, shard_path


@dataclass(frozen=True)
class Problem:
    file: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.reason}"


def validate(store: Store, ref: str | DatasetRef, check_episodes: bool = True) -> list[Problem]:
    """Every problem found in one version; an empty list means the version is intact. A
    manifest that cannot be read is a problem too, not an exception."""
    try:
        manifest = store.manifest(ref)
    except StoreError as error:
        ref = store.resolve(ref)
        path = getattr(error, "path", None) or store.shown(store.version_path(ref.name, ref.version))
        return [Problem(str(path), getattr(error, "reason", None) or error.readable())]
    schema = manifest.schema
    expected_features = json.loads(json.dumps(schema.tfds_features().to_json()))
    manifest_file = manifest.path
    problems = _check_chain(store, manifest)
    try:
        segments = manifest.segments
    except StoreError as error:
        return problems + [Problem(getattr(error, "path", manifest_file), getattr(error, "reason", error.readable()))]
    problems.extend(_check_totals(manifest, segments))
    for segment in segments:
        try:
            directory = store.readable_segment_dir(manifest.name, segment, fresh=True)
            files = [(shard_path(directory, entry), entry) for entry in [*segment["shards"], *segment["metadata_files"]]]
        except UnsafePathError as error:
            problems.append(Problem(manifest_file, error.readable()))
            continue
        except StoreError as error:  # an object store's file that is missing, damaged or unreadable
            problems.append(Problem(getattr(error, "path", manifest_file), getattr(error, "reason", error.readable())))
            continue
        if not directory.is_dir():
            problems.append(Problem(str(directory), "segment directory is missing"))
            continue
        damaged = [problem for path, entry in files if (problem := _check_file(path, entry))]
        damaged += _check_shard_format(directory, segment)
        problems.extend(damaged)
        if damaged:
            continue
        if _features_json(directory) != expected_features:
            problems.append(Problem(str(directory / "features.json"), "features differ from the version's schema"))
            continue
        if check_episodes:
            problems.extend(_check_episodes(directory, segment, schema))
    return problems


def _check_chain(store: Store, manifest: Manifest) -> list[Problem]:
    """The version's parent must be the exact file it was built on, unless it was pruned."""
    parent = manifest.data.get("parent")
    if not parent:
        return []
    path = store.version_path(manifest.name, parent["version"])
    if not store.has_file(path):
        if parent["version"] in store.pruned_versions(manifest.name):
            return []
        return [Problem(store.shown(path), f"version {parent['version']} (the parent of {manifest.version}) is missing "
                                   "and the dataset's log does not record pruning it")]
    if hashlib.sha256(store.read_file(path)).hexdigest() != parent["sha256"]:
        return [Problem(store.shown(path), f"differs from the file version {manifest.version} was built on "
                                   f"(its sha256 is recorded in {manifest.path})")]
    return []


def _check_totals(manifest: Manifest, segments) -> list[Problem]:
    counted = {"num_episodes": sum(s["num_episodes"] for s in segments),
               "num_steps": sum(s["num_steps"] for s in segments)}
    if "num_segments" in manifest.data:
        counted["num_segments"] = len(segments)
    return [Problem(manifest.path, f"{key} is {manifest.data[key]}, its segments hold {value}")
            for key, value in counted.items() if manifest.data[key] != value]


def _features_json(directory: Path) -> dict:
    """The segment's features as TFDS itself reads them from features.json."""
    import tensorflow_datasets as tfds

    return json.loads(json.dumps(tfds.features.FeatureConnector.from_config(str(directory)).to_json()))


def _check_file(path: Path, entry) -> Problem | None:
    if not path.is_file():
        return Problem(str(path), "file is missing")
    if path.stat().st_size != entry["bytes"]:
        return Problem(str(path), f"size is {path.stat().st_size} bytes, manifest says {entry['bytes']}")
    if sha256_file(path) != entry["sha256"]:
        return Problem(str(path), "sha256 differs from the manifest")
    return None


def _check_shard_format(directory: Path, segment) -> list[Problem]:
    """Every shard's TFDS name must say the format its segment record declares (readers and
    stock TFDS pick the file adapter by it)."""
    declared = segment_format(segment)
    return [Problem(str(shard_path(directory, shard)), f"named as a {file_format(shard['file'])} shard, its segment "
                                                       f"declares {declared}")
            for shard in segment["shards"] if file_format(shard["file"]) != declared][:1]


def _check_images(episode, schema, where: Location) -> None:
    """Decodes every stored PNG/JPEG image (readers would, later): the first that does not
    decode is a BadInputError naming its step and field."""
    steps = flatten(episode["steps"])
    for key, spec in schema.steps.items():
        if isinstance(steps[key], EncodedImages):
            bad = undecodable(steps[key], spec.shape)
            if bad is not None:
                raise BadInputError(bad[1], where.at(step=bad[0], field=f"steps/{key}"))


def _check_episodes(directory: Path, segment, schema) -> list[Problem]:
    from rlstore.tfds_episodes import episodes_in_shard

    problems = []
    for shard in segment["shards"]:
        path = str(shard_path(directory, shard))
        count = 0
        try:
            for index, episode in enumerate(episodes_in_shard(str(directory), path)):
                where = Location(file=path, episode=index)
                schema.check(episode, where)
                _check_images(episode, schema, where)
                count += 1
        except BadInputError as error:
            problems.append(Problem(path, error.readable()))
            continue
        if count != shard["num_episodes"]:
            problems.append(Problem(path, f"holds {count} episodes, manifest says {shard['num_episodes']}"))
    return problems
