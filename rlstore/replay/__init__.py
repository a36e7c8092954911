"""Reverb serving of store versions: tables filled from a version, checkpointed into the store.

    from rlstore.replay import Layout, TableOptions, ReplayServer, sample_dataset, update_priorities

    with ReplayServer(store, "catch_logs@3", Layout(tables=("transitions", "sequences"), n_step=3)) as server:
        batches = sample_dataset(server.address, "transitions", batch_size=256)

Item formats and options: `rlstore.replay.tables`; bulk loading: `rlstore.replay.loading`;
checkpoint layout in the store: `rlstore.replay.server`. `rlstore serve` runs a server in its
own process.
"""
from rlstore.replay.learning import sample_dataset, update_priorities
from rlstore.replay.loading import load_version
from rlstore.replay.server import ReplayServer, checkpoint_dir, latest_checkpoint
from rlstore.replay.tables import (SEQUENCES, TRANSITIONS, Layout, ReplayError, TableOptions, online_table,
                                   sequence_signature, transition_signature)

__all__ = ["Layout", "TableOptions", "ReplayServer", "ReplayError", "load_version", "sample_dataset",
           "update_priorities", "checkpoint_dir", "latest_checkpoint", "transition_signature",
           "sequence_signature", "online_table", "TRANSITIONS", "SEQUENCES"]
