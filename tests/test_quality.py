"""The quality report: mergeable summaries, the CombineFn in a real Beam pipeline, and the report an
ingest stores in the manifest, shown by `info` and drawn by `report`."""
import json

import numpy as np
import pytest

from rlstore.pipelines.ingest import ingest
from rlstore.pipelines.notes import OBSERVATION_JUMP, TRUNCATED, add_note, observation_jumps, pop_notes
from rlstore.pipelines.quality import QualityCombineFn
from rlstore.pipelines.summaries import MAX_BINS, Histogram
from rlstore.stats import Moments
from rlstore.cli import main
from rlstore.episode import make_episode
from rlstore.errors import Location
from rlstore.schema import Schema
from rlstore.store import Store
from tests.helpers import publish_episodes, vector_episode, write_npz_logs

OUTLIER = 1000.0


def _episode(length: int, seed: int):
    """3-float observations whose element 2 is always 0.5, 2-float actions, small rewards."""
    rng = np.random.default_rng(seed)
    observation = rng.normal(size=(length, 3)).astype(np.float32)
    observation[:, 2] = 0.5
    discount = np.ones(length, np.float32)
    terminal = seed % 2 == 0 and length >= 2
    if terminal:
        discount[-2] = 0
    return make_episode(observation, rng.uniform(-1, 1, size=(length, 2)).astype(np.float32),
                        rng.normal(size=length).astype(np.float32), discount, terminal,
                        episode_metadata={"episode_id": np.int64(seed)})


@pytest.fixture(scope="module")
def quality_store(tmp_path_factory):
    episodes = [_episode(6 + seed % 5, seed) for seed in range(10)] + [_episode(1, 10)]
    episodes[3]["steps"]["reward"][2] = OUTLIER
    logs = tmp_path_factory.mktemp("quality_logs")
    paths = write_npz_logs(logs, episodes)
    store = Store(tmp_path_factory.mktemp("store"))
    manifest = ingest(store, "q", [str(logs)])
    return store, manifest.data["report"], episodes, paths


def _transitions(episodes, field):
    return np.concatenate([np.asarray(e["steps"][field], np.float64)[:-1] for e in episodes])


def test_histograms_merge_exactly_in_any_split():
    rng = np.random.default_rng(0)
    for values in (rng.normal(size=1000) * 1e3, rng.integers(-5, 300, size=1000).astype(float), np.full(50, 2.5)):
        integer = bool(np.all(values == np.round(values)))
        whole = Histogram.empty(integer).add(values)
        left, right = Histogram.empty(integer), Histogram.empty(integer)
        for chunk in np.array_split(values, 7)[::2]:
            left = left.add(chunk)
        for chunk in np.array_split(values, 7)[1::2]:
            right = right.add(chunk)
        merged = right.merge(left)
        assert (merged.exponent, merged.offset, merged.counts.tolist()) == (whole.exponent, whole.offset, whole.counts.tolist())
        assert merged.counts.sum() == len(values) and len(merged.counts) <= MAX_BINS
        width = 2.0 ** whole.exponent
        assert whole.offset * width <= values.min() and values.max() < (whole.offset + len(whole.counts)) * width


def test_element_moments_merge_like_numpy():
    rng = np.random.default_rng(1)
    table = rng.normal(loc=1e4, size=(500, 3))
    merged = Moments.of(table[:17]).merge(Moments.of(table[17:300])).merge(Moments.of(table[300:]))
    assert merged.count == 500
    np.testing.assert_allclose(merged.mean, table.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(merged.std, table.std(axis=0), rtol=1e-9)
    assert np.array_equal(merged.min, table.min(axis=0)) and np.array_equal(merged.max, table.max(axis=0))


def test_scalar_moments_stream_exactly_and_read_the_sums_of_squares_of_older_versions():
    rng = np.random.default_rng(2)
    values = rng.normal(loc=1e4, size=300)
    streamed = Moments.empty()
    for value in values[:100]:
        streamed.add(value)
    merged = streamed.merge(Moments.of(values[100:]))
    assert merged.count == 300 and merged.summary() == pytest.approx(
        {"mean": values.mean(), "std": values.std(), "min": values.min(), "max": values.max()}, rel=1e-9)
    assert Moments.from_json(merged.to_json()).summary() == merged.summary()
    old = {"count": 300, "total": float(values.sum()), "total_sq": float((values ** 2).sum()),
           "min": float(values.min()), "max": float(values.max())}  # a version published before Chan's update
    assert Moments.from_json(old).summary() == pytest.approx(merged.summary(), rel=1e-4)


def test_reader_notes_reach_the_report_through_a_beam_combine():
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.testing.util import assert_that

    observations = np.arange(12, dtype=np.float32).reshape(6, 2)
    next_observations = np.concatenate([observations[1:], [[99, 99]]]).astype(np.float32)
    next_observations[3] += 5  # out of sync: next_observations[3] is not observations[4]
    assert observation_jumps(observations, next_observations).tolist() == [3]
    inputs = []
    for index in range(4):
        episode = vector_episode(5, seed=index)
        if index == 2:
            add_note(episode, OBSERVATION_JUMP, "next_observations[3] != observations[4]", step=3)
        if index == 3:
            add_note(episode, TRUNCATED, "the file ends inside this episode")
        notes = pop_notes(episode)
        assert "_rlstore_notes" not in episode
        where = Location(file=f"log{index}.hdf5", episode=index)
        inputs.append((where, episode, notes, 5, float(np.sum(episode["steps"]["reward"]))))
    schema = Schema.derive(inputs[0][1])
    fn = QualityCombineFn(schema.to_json())
    with beam.Pipeline(options=PipelineOptions(["--direct_running_mode=in_memory"])) as pipeline:
        reports = pipeline | beam.Create(inputs) | beam.CombineGlobally(fn)
        assert_that(reports, _check_notes_report)


def _check_notes_report(reports: list) -> None:
    """Beam's matcher: the pipeline's whole output, which must be exactly one report."""
    assert len(reports) == 1, reports
    (report,) = reports
    warnings = {w["kind"]: w for w in report["warnings"]}
    assert warnings[OBSERVATION_JUMP]["count"] == 1
    assert warnings[OBSERVATION_JUMP]["examples"] == [{"file": "log2.hdf5", "episode": 2, "step": 3,
                                                      "message": "next_observations[3] != observations[4]"}]
    assert warnings[TRUNCATED]["examples"][0]["file"] == "log3.hdf5"
    assert report["counts"]["episodes"] == 4 and report["counts"]["steps"] == 20


def test_report_counts_and_distributions(quality_store):
    _, report, episodes, _ = quality_store
    lengths = np.array([len(e["steps"]["reward"]) for e in episodes])
    returns = np.array([np.sum(e["steps"]["reward"][:-1], dtype=np.float64) for e in episodes])
    assert report["counts"] == {"episodes": 11, "steps": int(lengths.sum()), "transitions": int(lengths.sum() - 11),
                                "terminal_episodes": 5, "truncated_episodes": 6, "rejected_episodes": 0}
    assert report["episode_length"]["min"] == lengths.min() and report["episode_length"]["max"] == lengths.max()
    assert report["episode_return"]["mean"] == pytest.approx(returns.mean())
    assert report["episode_return"]["std"] == pytest.approx(returns.std())
    histogram = report["episode_length"]["histogram"]
    assert histogram["bin_width"] == 1
    assert histogram["counts"] == np.bincount(lengths - int(histogram["start"])).tolist()
    assert sum(report["episode_return"]["histogram"]["counts"]) == 11


def test_report_feature_statistics_per_element(quality_store):
    _, report, episodes, _ = quality_store
    observations = np.concatenate([e["steps"]["observation"] for e in episodes]).astype(np.float64)
    entry = report["features"]["steps/observation"]
    assert (entry["per"], entry["shape"], entry["count"]) == ("element", [3], len(observations))
    assert entry["min"] == observations.min(axis=0).tolist() and entry["max"] == observations.max(axis=0).tolist()
    np.testing.assert_allclose(entry["mean"], observations.mean(axis=0))
    np.testing.assert_allclose(entry["std"], observations.std(axis=0))
    actions = _transitions(episodes, "action")  # the last step's zero filler is left out
    assert report["features"]["steps/action"]["count"] == len(actions)
    assert report["features"]["steps/action"]["min"] == actions.min(axis=0).tolist()
    assert [sum(h["counts"]) for h in report["actions"]["steps/action"]["histograms"]] == [len(actions)] * 2
    assert not report["actions"]["steps/action"]["discrete"]
    assert "steps/is_first" not in report["features"]


def test_report_warnings(quality_store):
    _, report, _, paths = quality_store
    warnings = {w["kind"]: w for w in report["warnings"]}
    assert set(warnings) == {"single_step_episode", "constant_feature", "reward_outlier"}
    assert warnings["single_step_episode"]["examples"] == [{"file": str(paths[10]), "episode": 0}]
    assert warnings["constant_feature"]["examples"] == [{"field": "steps/observation", "element": 2, "value": 0.5}]
    outlier = warnings["reward_outlier"]
    assert outlier["count"] == 1
    assert outlier["examples"] == [{"file": str(paths[3]), "episode": 0, "step": 2, "value": OUTLIER}]


def test_info_shows_the_report_and_report_draws_it(quality_store, tmp_path, capsys):
    store, report, _, _ = quality_store
    assert main(["--store", str(store.root), "info", "q", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["report"]["counts"] == report["counts"]
    assert main(["--store", str(store.root), "info", "q"]) == 0
    out = capsys.readouterr().out
    assert "quality   of the 11 episodes this version added: 0 rejected, 3 warning(s)" in out
    assert "warning  reward_outlier" in out and "steps/observation[2]  0.5" in out
    image = tmp_path / "q.png"
    assert main(["--store", str(store.root), "report", "q@1", "--out", str(image)]) == 0
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image.stat().st_size > 20_000


def test_report_of_a_version_without_one_is_an_error(tmp_path, capsys):
    publish_episodes(Store(tmp_path), "plain", [vector_episode(5, 0)])
    assert main(["--store", str(tmp_path), "report", "plain", "--out", str(tmp_path / "x.png")]) == 1
    assert "has no quality report" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def _report_of(rewards_per_episode):
    """The quality report of episodes with these rewards, folded in two halves and merged, as
    the ingest pipeline's batches are."""
    episodes = []
    for index, rewards in enumerate(rewards_per_episode):
        episode = vector_episode(len(rewards) + 1, seed=index)
        episode["steps"]["reward"] = np.append(np.asarray(rewards, np.float32), np.float32(0))
        episodes.append((Location(file=f"log{index}.npz", episode=0), episode, [], len(rewards) + 1,
                         float(np.sum(rewards))))
    fn = QualityCombineFn(Schema.derive(episodes[0][1]).to_json())
    halves = []
    for part in (episodes[::2], episodes[1::2]):
        acc = fn.create_accumulator()
        for element in part:
            fn.add_input(acc, element)
        halves.append(fn.compact(acc))
    return fn.extract_output(fn.merge_accumulators(halves))


def _outliers(report):
    return [w for w in report["warnings"] if w["kind"] == "reward_outlier"]


def test_pong_like_and_sparse_rewards_are_levels_not_outliers():
    rng = np.random.default_rng(0)
    pong = [rng.choice([-1.0, 0.0, 1.0], size=800, p=[0.006, 0.99, 0.004]) for _ in range(12)]
    assert sum(int((r == -1).sum()) for r in pong) > 40  # a mean/std rule flagged every one of them
    assert _outliers(_report_of(pong)) == []
    sparse = [np.append(np.zeros(150), float(i % 3 == 0)) for i in range(30)]  # a goal reward, sometimes reached
    assert _outliers(_report_of(sparse)) == []


def test_outliers_cannot_hide_behind_the_spread_they_cause():
    rng = np.random.default_rng(1)
    rewards = [rng.normal(3.0, 1.0, size=200) for _ in range(10)]
    for episode in rewards[:5]:
        episode[rng.choice(200, size=20, replace=False)] = 1e4  # 5% sensor glitches: mean ± 6 std hid them
    warning, = _outliers(_report_of(rewards))
    assert warning["count"] >= 90 and warning["examples"][0]["value"] == 1e4
    assert "robust std" in warning["message"]


def test_continuous_rewards_without_outliers_raise_no_warning():
    rng = np.random.default_rng(2)
    assert _outliers(_report_of([rng.uniform(-1, 1, size=300) for _ in range(8)])) == []
    assert _outliers(_report_of([rng.normal(-2, 5, size=300) for _ in range(8)])) == []
