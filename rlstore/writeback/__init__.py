"""Write-back from online actors into the store (and Reverb), in a package of one idea per module:

- `writer`: `WriteBack`, the adder the actor calls; it buffers timesteps and ships columns;
- `columns`: holds each shipped column to its first dtype and shape;
- `channel`: the shared-memory slots the columns travel through;
- `worker`: the process (`python -m rlstore.writeback.worker`) that does the rest on another core;
- `stream`: cuts the column stream into RLDS episodes;
- `appender`: encodes episodes (`rlstore.encoding`) into the store, committing a version every K;
- `replay`: inserts episodes' rows into Reverb tables.
"""
from rlstore.writeback.writer import Commit, WriteBack, WriteBackError, WriteBackSummary, drive

__all__ = ["Commit", "WriteBack", "WriteBackError", "WriteBackSummary", "drive"]
