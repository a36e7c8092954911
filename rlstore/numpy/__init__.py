"""NumPy readers over store versions, with no TensorFlow anywhere in the process.

    from rlstore import Store
    from rlstore.numpy import transitions
    for batch in transitions(Store("./store"), "catch_logs@1", n_step=3, batch_size=256):
        batch["observation"], batch["reward"], ...   # numpy arrays, for JAX or anything else

The same readers as `rlstore.reading` (episodes, steps, transitions, sequences) with the same
row semantics; see `rlstore.numpy.readers`. `Replay` holds a version's rows in RAM and samples
them at random, as a replay buffer does (`rlstore.numpy.replay`). The shards are read and
checked here (TFRecord CRCs, tf.train.Example protobufs, PNG images) by `rlstore.tfrecord` and
Pillow.
"""
from rlstore.numpy.records import Share
from rlstore.numpy.readers import episodes, sequences, steps, transitions
from rlstore.numpy.replay import Replay

__all__ = ["episodes", "steps", "transitions", "sequences", "Share", "Replay"]
