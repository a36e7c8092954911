"""The ingest pipeline, unchanged, on a real Dask cluster (a scheduler and two worker processes on
127.0.0.1) through Beam's DaskRunner: the same episodes, rejects and report as the DirectRunner."""
import shutil

import numpy as np
import pytest

from rlstore.pipelines.dask_cluster import local_dask_cluster
from rlstore.pipelines.ingest import ingest
from rlstore.pipelines.sources.npz import write_episode
from rlstore.errors import BadInputError
from rlstore.store import Store
from tests.format_fixtures import stock_read
from tests.helpers import steps_equal, vector_episode

RUNNER = "--runner=apache_beam.runners.dask.dask_runner.DaskRunner"


@pytest.fixture(scope="module")
def dask_address(tmp_path_factory):
    """A `dask scheduler` and two single-threaded `dask worker` processes, stopped afterwards."""
    with local_dask_cluster(2, tmp_path_factory.mktemp("dask")) as address:
        yield address


@pytest.fixture(scope="module")
def logs_with_a_nan(tmp_path_factory, vector_logs):
    directory, _, episodes = vector_logs
    logs = tmp_path_factory.mktemp("dask_logs")
    for path in directory.glob("*.npz"):
        shutil.copy(path, logs / path.name)
    bad = vector_episode(6, seed=50)
    bad["steps"]["observation"][3, 0] = np.nan
    write_episode(logs / "z_nan.npz", bad)
    return logs, episodes


def _executed(address):
    from distributed import Client

    with Client(address) as client:
        return client.run(lambda dask_worker: dask_worker.state.executed_count)


def test_dask_ingest_holds_the_same_episodes_as_a_direct_runner_ingest(dask_address, logs_with_a_nan, tmp_path, capfd):
    logs, episodes = logs_with_a_nan
    direct = ingest(Store(tmp_path / "direct"), "vec", [str(logs)], on_error="skip")
    before = _executed(dask_address)
    capfd.readouterr()
    dask_store = Store(tmp_path / "dask")
    on_dask = ingest(dask_store, "vec", [str(logs)], on_error="skip", progress=True,
                     beam_args=[RUNNER, f"--dask_client_address={dask_address}"])
    err = capfd.readouterr().err
    assert "ingest: 100%" in err and "distributed" not in err  # the bar on the terminal, Dask's logs in beam.log
    after = _executed(dask_address)
    assert len(after) == 2 and all(after[worker] > before[worker] for worker in after)  # both workers took part

    read = {int(e["episode_id"]): e for e in stock_read(dask_store.segment_dirs("vec"))}
    assert sorted(read) == list(range(len(episodes)))
    assert all(steps_equal(episode, read[int(episode["episode_id"])]["steps"]) for episode in episodes)
    assert (on_dask.num_episodes, on_dask.num_steps) == (direct.num_episodes, direct.num_steps)
    ours, theirs = on_dask.data["report"], direct.data["report"]
    assert ours["counts"] == theirs["counts"] and ours["counts"]["rejected_episodes"] == 1
    assert [w["kind"] for w in ours["warnings"]] == [w["kind"] for w in theirs["warnings"]]
    assert ours["warnings"][0]["examples"][0]["file"] == str(logs / "z_nan.npz")
    for field, entry in ours["features"].items():
        assert entry["min"] == theirs["features"][field]["min"] and entry["max"] == theirs["features"][field]["max"]
        np.testing.assert_allclose(entry["mean"], theirs["features"][field]["mean"])
    rejects = [dask_store.root / "vec" / ours["rejects"]["path"], Store(tmp_path / "direct").root / "vec" / theirs["rejects"]["path"]]
    assert rejects[0].read_text() == rejects[1].read_text()
    assert on_dask.lineage["options"]["beam_args"][0] == RUNNER


def test_bad_input_on_dask_names_the_episode_and_publishes_nothing(dask_address, logs_with_a_nan, tmp_path):
    logs, _ = logs_with_a_nan
    store = Store(tmp_path)
    with pytest.raises(BadInputError) as caught:
        ingest(store, "vec", [str(logs)], beam_args=[RUNNER, f"--dask_client_address={dask_address}"])
    location = caught.value.location
    assert (location.file, location.episode, location.step, location.field) == (
        str(logs / "z_nan.npz"), 0, 3, "steps/observation")
    assert store.versions("vec") == [] and not (tmp_path / "vec").exists()  # a failed first ingest leaves nothing
