"""Write-back from online actors into the store (and Reverb), in a package of one idea per module:

- `writer`: `WriteBack`, the adder the actor calls; it buffers timesteps and ships columns;
- `columns`: holds each shipped column to its first dtype and shape;
- `channel`: the shared-memory slots the columns travel through;
- `worker`: the process (`python -m rlstore.writeback.worker`) that does the rest on another core;
- `stream`: cuts the column stream into RLDS episodes;
- `encode`: encodes a batch of episodes into Examples;
- `appender`: appends encoded episodes to the store and commits a version every K;
- `replay`: inserts episodes' rows into Reverb tables.
"""
from rlstore.writeback.writer import Commit, WriteBack, WriteBackError, WriteBackSummary, drive

__all__ = ["Commit", "WriteBack", "WriteBackError", "WriteBackSummary", "drive"]
