"""rlstore.wire: what crosses between rlstore's processes round-trips exactly, and nothing that
would need unpickling is accepted."""
import numpy as np
import pytest

from rlstore import wire
from rlstore.replay import Layout, TableOptions


def _roundtrip(message):
    header, buffers = wire.encode(message)
    return wire.decode(header, [bytearray(buffer) for buffer in buffers])


def test_nested_messages_with_arrays_round_trip_exactly():
    message = ("steps", {
        "step_type": np.array([0, 1, 2], np.int8),
        "reward": np.array([np.nan, 1.5, -np.inf]),
        "observation": {"board": np.arange(30, dtype=np.float32).reshape(3, 2, 5)[:, :, ::2],  # not contiguous
                        "text": np.array(["a", "bcd", ""]), "empty": np.zeros((3, 0), np.uint8)},
        "action": None, "count": np.int64(7), "flags": [True, 1, 2.5, "x", (1, (2,))],
    })
    kind, batch = _roundtrip(message)
    assert kind == "steps" and batch["action"] is None and batch["count"] == 7
    assert batch["flags"] == [True, 1, 2.5, "x", (1, (2,))]
    for path in ("step_type", "reward"):
        np.testing.assert_array_equal(batch[path], message[1][path])
        assert batch[path].dtype == message[1][path].dtype
    for key, value in message[1]["observation"].items():
        np.testing.assert_array_equal(batch["observation"][key], value)
        assert batch["observation"][key].dtype == value.dtype and batch["observation"][key].shape == value.shape
    batch["reward"][0] = 0.0  # the receiver owns writable arrays


@pytest.mark.parametrize("value", [np.array([object()]), {1: "not a string key"}, {"__tuple__": 1}, object(),
                                   Layout()])
def test_values_that_would_need_pickle_are_refused(value):
    with pytest.raises(wire.WireError):
        wire.encode({"field": value})


def test_a_layout_travels_as_json():
    layout = Layout(tables=("transitions", "sequences"), n_step=3, core_state_shapes=((4,), (4, 2)),
                    options=TableOptions(prioritized=True), sequence_options=TableOptions(max_size=10))
    assert Layout.from_json(_roundtrip(layout.to_json())) == layout
    assert Layout.from_json(_roundtrip(Layout().to_json())) == Layout()
