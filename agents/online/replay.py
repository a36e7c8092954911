"""The replay role: a Reverb server holding the agent's tables until the run stops.

Stopping the server is also what releases the other parts if they are blocked inside Reverb
(an actor's insert held back by the rate limiter, a learner waiting for samples): their calls
fail, and after a stop request they treat that as the end of the run.

Just before it stops, the server's own counts go to logs/replay.json: per table, the inserts
and samples its rate limiter completed and their ratio, next to the configured
samples-per-insert (what a run actually held its learner to).
"""
from __future__ import annotations

import sys
import threading

import reverb

from rlstore.agents import run_manifest
from rlstore.agents.errors import AgentError
from rlstore.agents.online.context import RunContext

_POLL_SECONDS = 0.2


def serve_replay(agent, context: RunContext, port: int, stop: threading.Event) -> None:
    """Serves `agent.make_replay_tables()` on `port`, fills them (`agent.fill_replay`), waits for `stop`."""
    try:
        server = reverb.Server(agent.make_replay_tables(), port=port)
    except (ValueError, RuntimeError) as error:
        raise AgentError(f"cannot start the replay server on port {port}: {error}") from None
    try:
        address = f"localhost:{server.port}"
        agent.fill_replay(address)
        sizes = {name: info.current_size for name, info in reverb.Client(address).server_info().items()}
        print(f"[replay] serving at port {server.port}: " + ", ".join(f"{n} ({s} items)" for n, s in sizes.items()),
              flush=True)
        while not stop.wait(_POLL_SECONDS):
            pass
        run_manifest.write(context.run.logs / "replay.json", table_counts(reverb.Client(address)))
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
