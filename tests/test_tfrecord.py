"""Our TF-free Example/TFRecord encoders must be byte-compatible with TensorFlow's parsers."""
import io

import numpy as np
import pytest
import tensorflow as tf

from rlstore import tfrecord
from tests.helpers import reference_example


def test_example_parses_with_tensorflow():
    ints = np.array([0, 1, 127, 128, 300, 2**40, -1, -(2**63)], dtype=np.int64)
    floats = np.array([0.5, -2.25, 1e30], dtype=np.float32)
    record = reference_example({
        "ints": tfrecord.int64_feature(ints),
        "floats": tfrecord.float_feature(floats),
        "bytes": tfrecord.bytes_feature([b"", b"abc", bytes(range(256))]),
        "empty": tfrecord.float_feature(np.zeros(0, np.float32)),
    })
    parsed = tf.train.Example.FromString(record).features.feature
    assert list(parsed["ints"].int64_list.value) == ints.tolist()
    assert np.array_equal(np.array(parsed["floats"].float_list.value, np.float32), floats)
    assert list(parsed["bytes"].bytes_list.value) == [b"", b"abc", bytes(range(256))]
    assert list(parsed["empty"].float_list.value) == []


def test_records_read_by_tf_data_and_back(tmp_path):
    path = tmp_path / "shard.tfrecord"
    payloads = [b"first", b"", b"x" * 100_000]
    with open(path, "wb") as stream:
        writer = tfrecord.RecordWriter(stream)
        for payload in payloads:
            writer.write(payload)
    assert [r.numpy() for r in tf.data.TFRecordDataset(str(path))] == payloads
    with open(path, "rb") as stream:
        assert list(tfrecord.read_records(stream)) == payloads
    import hashlib

    assert writer.sha256.hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()


def test_corrupt_record_is_detected(tmp_path):
    buffer = io.BytesIO()
    tfrecord.RecordWriter(buffer).write(b"payload-bytes")
    data = bytearray(buffer.getvalue())
    data[14] ^= 0xFF
    with pytest.raises(ValueError, match="corrupt record data"):
        list(tfrecord.read_records(io.BytesIO(bytes(data)), "shard"))
