"""The imitation format: the real TrajectoryWithRew file from the imitation project, read without
unpickling, through the Beam pipeline and read back with stock TFDS."""
import numpy as np
import pytest

from rlstore.datasets.external import external_file
from rlstore.pipelines.ingest import ingest, plan
from rlstore.pipelines.sources.imitation import ImitationFormat
from rlstore.errors import BadInputError
from rlstore.store import Store
from tests.format_fixtures import assert_rejected, stock_read

EXPERT = str(external_file("imitation_cartpole_expert.npz"))  # CartPole-v1: 500-step time limit
IN_MEMORY = ["--direct_running_mode=in_memory"]  # the real DirectRunner, without starting worker processes


@pytest.fixture(scope="module")
def raw():
    with np.load(EXPERT, allow_pickle=False) as archive:
        return {key: archive[key] for key in ("obs", "acts", "rews", "terminal", "indices")}


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("store"))
    manifest = ingest(store, "cartpole_expert", [EXPERT], format_options={"max_episode_steps": 500}, beam_args=IN_MEMORY)
    return manifest, stock_read(store.segment_dirs("cartpole_expert"))


def test_detected_and_infos_never_unpickled():
    source_format, items, run_metadata = plan([EXPERT], "auto")[:3]
    assert source_format.name == "imitation" and items == [{"path": EXPERT}]
    assert run_metadata == {"ignored_keys": {EXPERT: ["infos"]}}


def test_round_trip_of_every_episode(ingested, raw):
    manifest, episodes = ingested
    assert manifest.lineage["format"] == "imitation" and manifest.lineage["run_metadata"]["ignored_keys"]
    lengths = np.diff(np.concatenate([[0], raw["indices"], [len(raw["acts"])]]))
    assert manifest.num_episodes == 57 and manifest.num_steps == len(raw["obs"]) == 26_964 + 57
    by_first = {e["steps"]["observation"][0].tobytes(): e["steps"] for e in episodes}
    act_start = 0
    for index, length in enumerate(lengths):
        steps = by_first[raw["obs"][act_start + index].tobytes()]
        np.testing.assert_array_equal(steps["observation"], raw["obs"][act_start + index: act_start + index + length + 1])
        np.testing.assert_array_equal(steps["action"], np.append(raw["acts"][act_start:act_start + length], 0))
        np.testing.assert_array_equal(steps["reward"], np.append(raw["rews"][act_start:act_start + length], 0.0))
        assert steps["reward"].dtype == np.float64
        act_start += length


def test_time_limit_ends_are_truncations_with_max_episode_steps(ingested, raw):
    _, episodes = ingested
    ends = sorted((len(e["steps"]["reward"]) - 1, bool(e["steps"]["is_terminal"][-1]), float(e["steps"]["discount"][-2]))
                  for e in episodes)
    assert {(n, terminal, d) for n, terminal, d in ends if n == 500} == {(500, False, 1.0)}
    assert all(terminal and d == 0.0 for n, terminal, d in ends if n < 500)
    assert sum(n == 500 for n, _, _ in ends) == 15


def test_without_max_episode_steps_the_recorded_flag_is_trusted():
    fmt = ImitationFormat()
    episodes = [episode for item in fmt.work_items([__import__("pathlib").Path(EXPERT)]) for _, episode in fmt.read(item)]
    assert all(e["steps"]["is_terminal"][-1] for e in episodes)


def test_episode_longer_than_the_time_limit_is_refused(tmp_path):
    store = Store(tmp_path / "store")
    with pytest.raises(BadInputError) as raised:
        ingest(store, "ds", [EXPERT], format="imitation", format_options={"max_episode_steps": 450})
    assert_rejected(raised.value, EXPERT, store, episode=0, field="acts")


def test_inconsistent_arrays_name_the_field(tmp_path, raw):
    path = tmp_path / "short.npz"
    np.savez(path, **{**raw, "obs": raw["obs"][:-1]})
    with pytest.raises(BadInputError) as raised:
        list(ImitationFormat().read({"path": str(path)}))
    assert raised.value.location.field == "obs" and "one final observation per episode" in raised.value.readable()
