"""Stores in an object store (`s3://bucket/prefix`), against a real S3-compatible server (moto's
server mode on 127.0.0.1, reached through AWS_ENDPOINT_URL; see the `s3_store` fixture)."""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import threading
import time

import boto3
import pytest

from rlstore.cli import main
from rlstore.errors import StoreError
from rlstore.fs import RemoteError, split_url
from rlstore.numpy import episodes as numpy_episodes
from rlstore.remote_store import RemoteStore
from rlstore.store import Store
from rlstore.validation import validate
from tests.helpers import bucket_keys, publish_episodes, vector_episode

_IN_PROCESS_BEAM = ["--", "--direct_num_workers=1", "--direct_running_mode=in_memory"]


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_ingest_list_info_validate_gc_and_readers(capsys, s3_store, vector_logs, tmp_path, monkeypatch):
    logs, _, originals = vector_logs
    code, out, err = _run(capsys, "--store", s3_store, "ingest", "--dataset", "logs", "--format", "npz",
                          f"{logs}/*.npz", *_IN_PROCESS_BEAM)
    assert code == 0, err
    assert "versions/1.json" in " ".join(bucket_keys(s3_store, "logs/versions/"))
    publish_episodes(Store(s3_store), "logs", [vector_episode(6, 100)])  # an append: version 2

    code, out, _ = _run(capsys, "--store", s3_store, "list")
    assert code == 0 and "logs" in out and str(len(originals) + 1) in out
    code, out, _ = _run(capsys, "--store", s3_store, "info", "logs", "--json")
    info = json.loads(out)
    assert info["versions"] == [1, 2] and info["num_episodes"] == len(originals) + 1
    assert all(segment.startswith(f"{s3_store}/logs/segments/") for segment in info["segments"])
    code, out, _ = _run(capsys, "--store", s3_store, "validate", "logs")
    assert code == 0 and out.startswith("logs@2: ok (2 segment(s)")

    # Another host: an empty cache reads everything from the bucket, checked against the manifest.
    monkeypatch.setenv("RLSTORE_CACHE", str(tmp_path / "other_host"))
    store = Store(s3_store)
    lengths = sorted(len(e["steps"]["reward"]) for e in numpy_episodes(store, "logs@1", repeat=False))
    assert lengths == sorted(len(e["steps"]["reward"]) for e in originals)
    assert sum(1 for _ in store.load("logs")) == len(originals) + 1

    # A damaged shard in the bucket is found by validate, named by its URL, even though it is cached.
    shard_url = f"{info['segments'][1]}/{store.manifest('logs').segments[1]['shards'][0]['file']}"
    _, bucket, key = split_url(shard_url)
    s3 = boto3.client("s3")
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=bucket, Key=key, Body=body[:-3])
    code, _, err = _run(capsys, "--store", s3_store, "validate", "logs")
    assert code == 1 and shard_url in err and "sha256 differs" in err
    code, out, _ = _run(capsys, "--store", s3_store, "gc")
    assert code == 0 and "0 path(s) removed" in out


def _publisher(url: str, seed: int, barrier) -> None:
    store = Store(url)
    barrier.wait()
    publish_episodes(store, "shared", [vector_episode(5, seed)], {"pipeline": f"writer-{seed}"})


def test_four_concurrent_writers_get_distinct_versions_and_lose_nothing(s3_store):
    context = multiprocessing.get_context("spawn")
    writers = 4
    barrier = context.Barrier(writers)
    processes = [context.Process(target=_publisher, args=(s3_store, seed, barrier)) for seed in range(writers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(180)
    assert [p.exitcode for p in processes] == [0] * writers
    store = Store(s3_store)
    assert store.versions("shared") == list(range(1, writers + 1))
    assert store.manifest("shared").num_episodes == writers
    assert sorted(int(e["episode_id"]) for e in store.load("shared")) == list(range(writers))
    assert {store.manifest(f"shared@{v}").lineage["pipeline"] for v in range(1, writers + 1)} == {
        f"writer-{i}" for i in range(writers)}
    assert bucket_keys(s3_store, "shared/staging/") == []


def _killed_while_placing_the_workers_shards(url: str, logs: str) -> None:
    from rlstore.fs import ObjectStore
    from rlstore.pipelines.ingest import ingest

    def copy_then_die(self, source, target):
        os.kill(os.getpid(), signal.SIGKILL)  # shards in the staging area, metadata in segments/

    ObjectStore.copy = copy_then_die
    ingest(Store(url), "ds", [logs], beam_args=["--direct_running_mode=multi_threading", "--direct_num_workers=2"])


def test_kill_9_mid_upload_publishes_nothing_and_gc_clears_it_after_the_lease(s3_store, vector_logs, monkeypatch):
    monkeypatch.setenv("RLSTORE_LEASE_SECONDS", "3")  # short, but renewable on a loaded machine
    store = Store(s3_store)
    publish_episodes(store, "ds", [vector_episode(5, 0)])
    process = multiprocessing.get_context("spawn").Process(target=_killed_while_placing_the_workers_shards,
                                                           args=(s3_store, str(vector_logs[0])))
    process.start()
    process.join(180)
    assert process.exitcode == -signal.SIGKILL
    assert store.versions("ds") == [1]
    assert sum(1 for _ in store.load("ds")) == 1
    referenced = {s["id"] for s in store.manifest("ds").segments}
    uploaded = {key.split("/")[2] for key in bucket_keys(s3_store, "ds/segments/")}
    assert len(uploaded - referenced) == 1  # the dead writer's partial segment
    staged = bucket_keys(s3_store, "ds/staging/")  # the lease, and the shards the pipeline's workers uploaded
    assert any(key.endswith(".lease") for key in staged) and sum(key.endswith(".pending-shard") for key in staged) >= 2

    # A live writer's staging survives gc however long it lives: its lease is renewed.
    with store.staging("ds") as live:  # opening staging collects too, once the dead lease is old enough
        time.sleep(7)  # the dead writer's lease has expired, plus a whole term
        store.collect_garbage("ds")
        assert bucket_keys(s3_store, "ds/staging/") == [f"ds/staging/{live.path.name}.lease"]
        assert store.has_live_writer("ds")
    assert {key.split("/")[2] for key in bucket_keys(s3_store, "ds/segments/")} == referenced  # partial segment gone
    publish_episodes(store, "ds", [vector_episode(5, 1)])
    assert store.versions("ds") == [1, 2] and validate(store, "ds") == []


@pytest.mark.parametrize("fault", ["missing bucket", "missing credentials", "refused endpoint"])
def test_faults_are_one_line_exit_1_and_publish_nothing(capsys, s3_store, vector_logs, monkeypatch, tmp_path, fault):
    logs, _, _ = vector_logs
    url, expected = s3_store, ""
    with monkeypatch.context() as patch:
        if fault == "missing bucket":
            url, expected = "s3://rlstore-no-such-bucket/store", "error: s3://rlstore-no-such-bucket: the bucket does not exist"
        elif fault == "missing credentials":
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                patch.delenv(name)
            patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
            patch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
            expected = "no AWS credentials found"
        else:
            with socket.socket() as unused:
                unused.bind(("127.0.0.1", 0))
                port = unused.getsockname()[1]
            patch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
            expected = f"cannot connect to http://127.0.0.1:{port}"
        for argv in (["ingest", "--dataset", "ds", f"{logs}/*.npz", *_IN_PROCESS_BEAM], ["list"]):
            code, out, err = _run(capsys, "--store", url, *argv)
            assert code == 1 and out == "" and err.count("\n") == 1 and expected in err, err
    assert bucket_keys(s3_store) == []


def test_unsupported_schemes_and_remote_only_limits_are_one_line(s3_store):
    with pytest.raises(StoreError, match="unsupported store scheme 'gcs://'.*Google Cloud Storage is gs://"):
        Store("gcs://bucket/store").versions("ds")
    with pytest.raises(StoreError, match="no bucket named"):
        Store("s3:///store").versions("ds")
    with pytest.raises(StoreError, match="prune is not supported on object-store roots"):
        Store(s3_store).prune("ds", keep_last=1)
    assert isinstance(Store(s3_store), RemoteStore) and not isinstance(Store("relative/dir"), RemoteStore)


class _CuttingProxy:
    """A TCP proxy in front of the S3 server that cuts the connection in the middle of the
    response to a request whose bytes contain `marker` (a network failing mid-read), the first
    `limit` times."""

    def __init__(self, target: tuple[str, int], marker: bytes, keep: int = 1000, limit: int = 1 << 30):
        self.target, self.marker, self.keep, self.limit, self.cuts = target, marker, keep, limit, 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            state = {"cut": False}
            threading.Thread(target=self._requests, args=(client, upstream, state), daemon=True).start()
            threading.Thread(target=self._responses, args=(upstream, client, state), daemon=True).start()

    def _requests(self, client, upstream, state) -> None:
        try:
            while data := client.recv(65536):
                if self.marker in data and self.cuts < self.limit:
                    state["cut"] = True
                upstream.sendall(data)
        except OSError:
            pass

    def _responses(self, upstream, client, state) -> None:
        sent = 0
        try:
            while data := upstream.recv(65536):
                if state["cut"]:
                    client.sendall(data[: max(0, self.keep - sent)])
                    sent += len(data)
                    if sent >= self.keep:
                        self.cuts += 1
                        break
                else:
                    client.sendall(data)
        except OSError:
            pass
        for sock in (client, upstream):
            try:
                sock.shutdown(socket.SHUT_RDWR)  # at once, though the other thread still reads it
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self._listener.close()


def test_a_read_cut_mid_transfer_is_retried_then_fails_naming_the_file(s3_store, s3_server, monkeypatch, tmp_path):
    store = Store(s3_store)
    publish_episodes(store, "ds", [vector_episode(50, seed) for seed in range(20)])
    shard = store.manifest("ds").segments[0]["shards"][0]["file"]
    host, port = s3_server.rsplit("//", 1)[1].split(":")
    proxy = _CuttingProxy((host, int(port)), marker=shard.encode())
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("RLSTORE_READ_ATTEMPTS", "3")
        monkeypatch.setenv("RLSTORE_CACHE", str(tmp_path / "cold"))
        started = time.monotonic()
        with pytest.raises(RemoteError) as failure:
            Store(s3_store).shard_paths("ds")
        assert failure.value.path.endswith(f"/ds/segments/{store.manifest('ds').segments[0]['id']}/{shard}")
        assert "cannot read after 3 attempts" in failure.value.readable()
        assert proxy.cuts >= 3 and time.monotonic() - started >= 0.3  # backoff: 0.1 s, then 0.2 s
        assert not any(path.is_file() for path in (tmp_path / "cold" / "objects").rglob("*"))  # nothing half-fetched
    finally:
        proxy.close()

    proxy = _CuttingProxy((host, int(port)), marker=shard.encode(), limit=2)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("RLSTORE_CACHE", str(tmp_path / "warm"))
        assert sum(1 for _ in numpy_episodes(Store(s3_store), "ds", repeat=False)) == 20
        assert proxy.cuts == 2
    finally:
        proxy.close()
