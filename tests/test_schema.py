"""Schema derivation, per-episode checks and RLDS alignment rules."""
import numpy as np
import pytest

from rlstore.episode import check_alignment, make_episode
from rlstore.errors import BadInputError, Location
from rlstore.encoding import encode_episodes
from rlstore.nest import flatten
from rlstore.schema import Schema
from tests.helpers import reference_encode, rich_episode, vector_episode


def test_derives_nested_images_vectors_and_metadata():
    schema = Schema.derive(rich_episode(4, seed=0))
    described = schema.describe()
    assert described["steps/observation/pixels"] == "uint8[6x5x3, png]"
    assert described["steps/observation/state/pos"] == "float32[2]"
    assert described["steps/observation/state/mode"] == "int32[scalar]"
    assert described["steps/action"] == "float32[2]"
    assert described["steps/temperature"] == "float64[scalar, bytes]"  # lossless, not via float32
    assert described["episode_id"] == "int64[scalar]"
    assert described["task"] == "str[scalar]"
    assert Schema.from_json(schema.to_json()) == schema


def test_discrete_actions_and_schema_equality():
    a, b = Schema.derive(vector_episode(5, 0)), Schema.derive(vector_episode(9, 1, terminal=False))
    assert a == b and a.difference(b) is None
    assert a.describe()["steps/action"] == "int64[scalar]"


def test_mismatched_episode_names_field():
    schema = Schema.derive(vector_episode(5, 0))
    episode = vector_episode(5, 1)
    episode["steps"]["observation"] = episode["steps"]["observation"][:, :3]
    with pytest.raises(BadInputError) as raised:
        schema.check(episode, Location(file="f.npz", episode=0))
    assert raised.value.location.field == "steps/observation"
    assert "expected float32[4]" in raised.value.readable()


def test_nan_reward_names_step_and_field():
    schema = Schema.derive(vector_episode(6, 0))
    episode = vector_episode(6, 1)
    episode["steps"]["reward"][2] = np.nan
    with pytest.raises(BadInputError) as raised:
        schema.check(episode, Location(file="f"))
    assert (raised.value.location.step, raised.value.location.field) == (2, "steps/reward")


def test_extra_and_missing_fields():
    schema = Schema.derive(vector_episode(5, 0))
    extra = vector_episode(5, 1)
    extra["steps"]["surprise"] = np.zeros(5)
    with pytest.raises(BadInputError, match="not in the dataset's schema"):
        schema.check(extra)
    missing = vector_episode(5, 1)
    del missing["episode_id"]
    with pytest.raises(BadInputError, match="missing"):
        schema.check(missing)


def test_string_actions_rejected():
    episode = make_episode(np.zeros((3, 2), np.float32), np.array(["l", "r", "l"]), np.zeros(3, np.float32),
                           np.ones(3, np.float32), False)
    with pytest.raises(BadInputError, match="action must be numeric"):
        Schema.derive(episode)


def test_sar_alignment_zero_fills_last_step_and_marks_flags():
    episode = vector_episode(4, 0, terminal=True)
    steps = episode["steps"]
    assert steps["is_first"].tolist() == [True, False, False, False]
    assert steps["is_last"].tolist() == [False, False, False, True]
    assert steps["is_terminal"].tolist() == [False, False, False, True]
    assert steps["reward"][-1] == 0 and steps["discount"][-1] == 0 and steps["action"][-1] == 0
    assert steps["discount"][-2] == 0


@pytest.mark.parametrize("breakage, field", [
    (lambda s: s["is_first"].__setitem__(1, True), "steps/is_first"),
    (lambda s: s["is_last"].__setitem__(0, True), "steps/is_last"),
    (lambda s: s["is_terminal"].__setitem__(1, True), "steps/is_terminal"),
    (lambda s: s["discount"].__setitem__(0, 0.0), "steps/discount"),
    (lambda s: s["discount"].__setitem__(2, 1.5), "steps/discount"),
])
def test_alignment_violations(breakage, field):
    episode = vector_episode(5, 0, terminal=False)
    breakage(episode["steps"])
    with pytest.raises(BadInputError) as raised:
        check_alignment(episode)
    assert raised.value.location.field == field


def test_terminal_needs_zero_discount_and_truncation_needs_nonzero():
    terminal = vector_episode(5, 0, terminal=True)
    terminal["steps"]["discount"][-2] = 1.0
    with pytest.raises(BadInputError, match="is_terminal is True"):
        check_alignment(terminal)
    truncated = vector_episode(5, 0, terminal=False)
    truncated["steps"]["discount"][-2] = 0.0
    with pytest.raises(BadInputError, match="time-limit cut"):
        check_alignment(truncated)


def test_batch_encoder_writes_exactly_what_the_per_field_reference_writes():
    """Equal- and unequal-length episodes, images, float64 bytes, text, multi-byte varints."""
    rng = np.random.default_rng(1)
    for make in (rich_episode, vector_episode):
        episodes = [make(int(n), seed=i) for i, n in enumerate(rng.integers(1, 7, size=9))]
        episodes[2]["steps"]["action"] = episodes[2]["steps"]["action"] * -300  # multi-byte varints
        schema = Schema.derive(episodes[0])
        flat = [flatten(episode["steps"]) for episode in episodes]
        steps = {key: np.concatenate([f[key] for f in flat]) for key in flat[0]}
        lengths = np.array([len(f["reward"]) for f in flat])
        metadata = {key: [episode[key] for episode in episodes] for key in schema.episode}
        records = encode_episodes(schema, steps, np.cumsum(lengths) - lengths, lengths, metadata)
        assert records == [reference_encode(schema, episode) for episode in episodes]
        assert [schema.encode(episode) for episode in episodes] == records
