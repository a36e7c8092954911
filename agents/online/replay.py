"""The replay role: a Reverb server holding the agent's tables until the run stops.

Stopping the server is also what releases the other parts if they are blocked inside Reverb
(an actor's insert held back by the rate limiter, a learner waiting for samples): their calls
fail, and after a stop request they treat that as the end of the run.

The tables are checkpointed into the run directory (DIR/replay/reverb/<time>/, Reverb's own
format, DONE written last) every `checkpoint_every` seconds of the run (0: not on a timer) and
once more when the role stops, so that a resumed run (rlstore.agents.online.resuming) restores
them as they were, priorities and rate-limiter counts included. A server that starts over a
complete checkpoint restores it instead of calling `fill_replay` (which would load the
demonstrations twice).

Every few seconds and just before it stops, the server's own counts go to logs/replay.json: per
table, the inserts and samples its rate limiter completed and their ratio, next to the
configured samples-per-insert (what a run actually held its learner to).
"""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import reverb

from rlstore.agents import run_manifest
from rlstore.agents.errors import AgentError
from rlstore.agents.online.context import RunContext
from rlstore.replay.server import checkpointer_at, latest_checkpoint

_POLL_SECONDS = 0.2
_COUNTS_SECONDS = 5.0


def checkpoint_dir(context: RunContext) -> Path:
    return context.run.path / "replay"


def serve_replay(agent, context: RunContext, port: int, stop: threading.Event) -> None:
    """Serves `agent.make_replay_tables()` on `port`, restored from the run's last replay checkpoint or
    filled (`agent.fill_replay`), checkpointing as it goes; waits for `stop`."""
    directory = checkpoint_dir(context)
    restored = latest_checkpoint(directory)
    try:
        server = reverb.Server(agent.make_replay_tables(), port=port, checkpointer=checkpointer_at(directory))
    except (ValueError, RuntimeError) as error:
        where = f" from checkpoint {restored}" if restored else ""
        raise AgentError(f"cannot start the replay server on port {port}{where}: {error}") from None
    try:
        address = f"localhost:{server.port}"
        client = reverb.Client(address)
        if restored is None:
            agent.fill_replay(address)
        sizes = {name: info.current_size for name, info in client.server_info().items()}
        how = f"restored from {restored}" if restored else "filled"
        print(f"[replay] serving at port {server.port} ({how}): "
              + ", ".join(f"{n} ({s} items)" for n, s in sizes.items()), flush=True)
        every = context.checkpoint_every or 0
        checkpointed = counted = time.monotonic()
        while not stop.wait(_POLL_SECONDS):
            now = time.monotonic()
            if every > 0 and now - checkpointed >= every:
                client.checkpoint()
                checkpointed = now
            if now - counted >= _COUNTS_SECONDS:  # kept even if this process is killed at the end
                run_manifest.write(context.run.logs / "replay.json", table_counts(client))
                counted = now
        run_manifest.write(context.run.logs / "replay.json", table_counts(client))
        client.checkpoint()  # after the actors and the learner have stopped: what a resume starts from
    finally:
        server.stop()
        print("[replay] stopped", file=sys.stderr, flush=True)


def table_counts(client: reverb.Client) -> dict[str, dict[str, float | int | None]]:
    """Per table: completed inserts and samples, their ratio, and the configured samples per insert."""
    counts = {}
    for name, info in client.server_info().items():
        limiter = info.rate_limiter_info
        inserts, samples = limiter.insert_stats.completed, limiter.sample_stats.completed
        counts[name] = {"inserts": inserts, "samples": samples,
                        "samples_per_insert": round(samples / inserts, 3) if inserts else None,
                        "configured_samples_per_insert": limiter.samples_per_insert, "size": info.current_size}
    return counts
