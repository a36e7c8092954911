"""Session-wide fixtures: TensorFlow is imported once per worker and expensive data built once."""
from __future__ import annotations

import pytest

from rlstore.quiet import silence  # noqa: E402

silence()  # the test session is a program of its own: keep its output readable


@pytest.fixture(scope="session")
def vector_logs(tmp_path_factory):
    """12 npz episode logs of varying length (terminal and truncated) and their episodes."""
    from tests.helpers import vector_episode, write_npz_logs

    episodes = [vector_episode(5 + i, seed=i, terminal=i % 2 == 0) for i in range(12)]
    directory = tmp_path_factory.mktemp("vector_logs")
    return directory, write_npz_logs(directory, episodes), episodes


@pytest.fixture(scope="session")
def dopamine_run(tmp_path_factory):
    """Two Dopamine replay checkpoints (one wrapped) of real Breakout frames, written by Dopamine."""
    from tests.dopamine_fixtures import played_episodes, write_checkpoints

    return write_checkpoints(tmp_path_factory.mktemp("dopamine") / "replay", played_episodes())


@pytest.fixture(scope="session")
def dopamine_store(tmp_path_factory, dopamine_run):
    """The checkpoints above ingested (format auto-detected) as one version of dataset `atari`."""
    from rlstore.pipelines.ingest import ingest
    from rlstore.store import Store

    store = Store(tmp_path_factory.mktemp("dopamine_store"))
    ingest(store, "atari", [str(dopamine_run.directory)], beam_args=["--direct_num_workers=1",
                                                                      "--direct_running_mode=in_memory"])
    return store


@pytest.fixture(scope="session")
def framework_store(tmp_path_factory):
    """A store for the TF-free readers: 'vec' (two segments, terminal and time-limited episodes)
    and 'rich' (images, nested dicts, float64 step metadata, text), with the episodes put in."""
    from rlstore.store import Store
    from tests.helpers import publish_episodes, rich_episode, vector_episode

    store = Store(tmp_path_factory.mktemp("frameworks"))
    vec = [vector_episode(5 + i, seed=i, terminal=i % 2 == 0) for i in range(10)]
    publish_episodes(store, "vec", vec[:6])
    publish_episodes(store, "vec", vec[6:])
    rich = [rich_episode(3 + i, seed=i) for i in range(4)]
    publish_episodes(store, "rich", rich)
    return store, {"vec": vec, "rich": rich}


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-compatible server (moto's server mode) on 127.0.0.1; its endpoint URL."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_store(s3_server, monkeypatch, tmp_path):
    """`s3://<a new bucket>/store` on the moto server, reached through the standard AWS
    variables (dummy credentials), with this test's own local cache; child processes inherit it."""
    import uuid

    import boto3

    for name, value in {"AWS_ENDPOINT_URL": s3_server, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_EC2_METADATA_DISABLED": "true", "RLSTORE_CACHE": str(tmp_path / "cache")}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    bucket = f"rlstore-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return f"s3://{bucket}/store"


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory):
    """A GCS emulator on 127.0.0.1 (fake-gcs-server, in-memory backend; see tests/gcs_emulator.py)
    that honours `ifGenerationMatch` on the multipart uploads gcsfs makes for small objects."""
    from tests.gcs_emulator import GcsEmulator

    emulator = GcsEmulator(tmp_path_factory.mktemp("gcs_emulator"))
    yield emulator
    emulator.stop()


@pytest.fixture
def gcs_store(gcs_server, monkeypatch, tmp_path):
    """`gs://<a new bucket>/store` on the emulator, reached through the standard
    STORAGE_EMULATOR_HOST variable, with this test's own local cache. A test using it fails with
    the emulator's state, rather than hanging, if it runs past 240 s."""
    import uuid

    from tests.gcs_emulator import deadline

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.url)
    monkeypatch.setenv("RLSTORE_CACHE", str(tmp_path / "cache"))
    bucket = f"rlstore-{uuid.uuid4().hex[:12]}"
    gcs_server.create_bucket(bucket)
    with deadline(gcs_server, 240):
        yield f"gs://{bucket}/store"
