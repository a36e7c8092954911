"""Converting a store version out to other formats: Minari, D4RL and a single RLDS/TFDS directory.

    from rlstore.convert import convert
    report = convert(store, "hopper@3", to="d4rl", out="hopper.hdf5")
    report.warnings   # what the format could not hold, named field by field

Episodes are read with `rlstore.numpy` (no TensorFlow, one episode at a time, so memory stays
bounded), in the version's manifest order. Every target is written beside its final place and
renamed into it at the end: a failed conversion leaves nothing half-written where the user looks.
"""
from rlstore.convert.common import ConvertReport, convert, FORMATS

__all__ = ["convert", "ConvertReport", "FORMATS"]
