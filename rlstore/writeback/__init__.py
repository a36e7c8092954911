"""Write-back from online actors into the store (and Reverb), in a package of one idea per module:

- `writer`: `WriteBack`, the writer an actor calls; it records timesteps and ships columns;
- `adder`: `Adder`, the online actor's single write path, to Reverb and (through a
  `WriteBack`) the store, from one recording of each step;
- `columns`: `StepRecorder`, the one recording of a dm_env stream, and its column batches
  (each column held to its first dtype and shape);
- `channel`: the shared-memory slots the columns travel through;
- `worker`: the process (`python -m rlstore.writeback.worker`) that does the rest on another core;
- `stream`: cuts the column stream into RLDS episodes (the one episode builder);
- `appender`: encodes episodes (`rlstore.encoding`) into the store, committing a version every K;
- `replay`: inserts episodes' rows into Reverb tables.
"""
from rlstore.writeback.writer import Commit, WriteBack, WriteBackError, WriteBackSummary, drive

__all__ = ["Commit", "WriteBack", "WriteBackError", "WriteBackSummary", "drive"]
