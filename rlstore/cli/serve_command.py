"""`rlstore serve`: a Reverb replay server over a store version, in its own process.

The process fills (or restores) the tables, prints their layout and the address, then serves
until SIGINT or SIGTERM; with `--checkpoint-every` it checkpoints into the store periodically
and once more on the way out. Learners and actors connect with a plain `reverb.Client`.
"""
from __future__ import annotations

import argparse
import signal
import threading
from typing import Any, Sequence

from rlstore.cli.formatting import table
from rlstore.store import Store

_EPILOG = """\
The server listens on every network interface with no authentication (Reverb cannot bind one
address): anyone who can reach the port can read every item, insert and delete items, and make
it write checkpoints. It starts only with --expose; put the port behind a firewall or reach it
through an SSH tunnel (ssh -L 8000:localhost:8000 HOST). See README, Security.

examples:
  rlstore --store ./store serve catch_logs --port 8000 --expose
  rlstore --store ./store serve catch_logs@2 --port 8000 --expose --tables transitions,sequences --n-step 3 --prioritized
  rlstore --store ./store serve catch_logs --expose --checkpoint-every 600     # restarts resume from the store
  rlstore --store ./store serve tmaze_demos --expose --tables sequences --demo --prioritized --priority-exponent 0.9 \
          --core-state-shapes 64,64 --online-table agent_sequences --online-samples-per-insert 16
          # R2D3's replay: demonstrations plus an empty table for the actors (rlstore run r2d3 --role ...)

then, in any process:  reverb.Client("HOST:8000")  or  rlstore.replay.sample_dataset("HOST:8000", "transitions", 256)
"""


def register(commands) -> None:
    serve = commands.add_parser(
        "serve", help="serve a version through a Reverb replay server until interrupted",
        description="Fills Reverb tables from a store version (or restores them from the newest replay "
                    "checkpoint of that version and layout), prints the table layout and the server's "
                    "address, and serves until Ctrl-C or SIGTERM.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("ref", metavar="NAME[@V]")
    serve.add_argument("--port", type=int, default=None, help="port to listen on (default: a free one)")
    serve.add_argument("--expose", action="store_true",
                       help="start although the server listens on every interface with no authentication "
                            "(required: see above)")
    serve.add_argument("--tables", default="transitions",
                       help="comma-separated tables: transitions, sequences (default: transitions)")
    serve.add_argument("--n-step", type=int, default=1, help="n of the n-step transitions (default 1)")
    serve.add_argument("--gamma", type=float, default=0.99, help="discount of the n-step sums (default 0.99)")
    serve.add_argument("--sequence-length", type=int, default=40, help="learning steps per sequence (default 40)")
    serve.add_argument("--period", type=int, default=20, help="steps between sequence starts (default 20)")
    serve.add_argument("--burn-in", type=int, default=0, help="extra leading steps per sequence (default 0)")
    serve.add_argument("--demo", action="store_true", help="mark the sequences as demonstrations (is_demo)")
    serve.add_argument("--core-state-shapes", type=_shapes, default=(), metavar="S,S",
                       help="give sequences a `core_state` column (zeros when loaded) of float32 tensors of these "
                            "shapes, e.g. 64,64 for an LSTM's (h, c) of 64 units; 4x8 is a [4, 8] tensor")
    serve.add_argument("--prioritized", action="store_true", help="prioritized instead of uniform sampling")
    serve.add_argument("--priority-exponent", type=float, default=0.6, help="prioritized sampling exponent")
    serve.add_argument("--max-size", type=int, default=1_000_000, help="items per table; FIFO removal beyond")
    serve.add_argument("--min-size", type=int, default=1, help="items a table must hold before sampling")
    serve.add_argument("--samples-per-insert", type=float, default=None,
                       help="rate-limit to this sample/insert ratio (SampleToInsertRatio); default: MinSize only")
    serve.add_argument("--error-buffer", type=float, default=None,
                       help="ratio limiter slack (default: enough to bulk-load the version)")
    serve.add_argument("--checkpoint-every", type=float, default=None, metavar="SECONDS",
                       help="checkpoint into the store this often, and once more at shutdown")
    serve.add_argument("--fresh", action="store_true",
                       help="discard this version and layout's replay checkpoints and load the version anew")
    online = serve.add_argument_group(
        "online table", "an extra, initially empty table with the items of the first table listed, for online "
                        "actors to fill (sampled as --prioritized says)")
    online.add_argument("--online-table", metavar="NAME", help="name of the extra table, e.g. agent_sequences")
    online.add_argument("--online-max-size", type=int, default=100_000, help="its size; FIFO removal beyond")
    online.add_argument("--online-min-size", type=int, default=1, help="items it must hold before sampling")
    online.add_argument("--online-samples-per-insert", type=float, default=None,
                        help="rate-limit it to this sample/insert ratio (default: MinSize only)")
    online.add_argument("--online-error-buffer", type=float, default=None,
                        help="its ratio limiter's slack (default: one insert's worth either way)")
    serve.set_defaults(run=run)


def _shapes(text: str) -> tuple[tuple[int, ...], ...]:
    try:
        return tuple(tuple(int(size) for size in item.split("x")) for item in text.split(",") if item.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected shapes like 64,64 or 4x8,4x8, got {text!r}") from None


def layout_from(args: argparse.Namespace):
    from rlstore.replay import Layout, TableOptions

    options = TableOptions(max_size=args.max_size, min_size=args.min_size, samples_per_insert=args.samples_per_insert,
                           error_buffer=args.error_buffer, prioritized=args.prioritized,
                           priority_exponent=args.priority_exponent)
    return Layout(tables=tuple(name.strip() for name in args.tables.split(",") if name.strip()), n_step=args.n_step,
                  gamma=args.gamma, sequence_length=args.sequence_length, sequence_period=args.period,
                  burn_in=args.burn_in, is_demo=args.demo, core_state_shapes=args.core_state_shapes, options=options)


def online_tables(store: Store, ref, layout, args: argparse.Namespace) -> list:
    """The `--online-table`, if asked for: empty, with the items of the layout's first table."""
    from rlstore.replay import TableOptions, online_table

    if not args.online_table:
        return []
    if args.online_table in layout.tables:
        from rlstore.replay import ReplayError

        raise ReplayError(f"--online-table {args.online_table!r} is already one of the loaded tables")
    options = TableOptions(max_size=args.online_max_size, min_size=args.online_min_size,
                           samples_per_insert=args.online_samples_per_insert, error_buffer=args.online_error_buffer,
                           prioritized=args.prioritized, priority_exponent=args.priority_exponent)
    return [online_table(args.online_table, store.manifest(ref), layout, layout.tables[0], options)]


def _describe_signature(signature: Any) -> str:
    import tree

    return ", ".join(f"{'/'.join(map(str, path))} {spec.dtype.name}{list(spec.shape)}"
                     for path, spec in tree.flatten_with_path(signature))


def _describe_limiter(info) -> str:
    limiter = info.rate_limiter_info
    if limiter.max_diff > 1e300:
        return f"MinSize({limiter.min_size_to_sample})"
    return (f"SampleToInsertRatio({limiter.samples_per_insert:g}, min {limiter.min_size_to_sample}, "
            f"error range [{limiter.min_diff:g}, {limiter.max_diff:g}])")


def print_layout(server) -> None:
    infos = server.info()
    names = [*server.layout.tables, *(name for name in infos if name not in server.layout.tables)]
    rows = []
    for name in names:
        info = infos[name]
        sampler = info.sampler_options
        kind = (f"prioritized({sampler.prioritized.priority_exponent:g})" if sampler.HasField("prioritized")
                else sampler.WhichOneof("distribution"))
        rows.append([name, info.current_size, info.max_size, kind, "fifo", _describe_limiter(info)])
    print(table(["table", "items", "max size", "sampler", "remover", "rate limiter"], rows))
    for name in names:
        print(f"{name} item: {_describe_signature(infos[name].signature)}")


def run(store: Store, args: argparse.Namespace, _: Sequence[str]) -> int:
    from rlstore.replay.logs import reverb_logs_filtered

    from rlstore.exposure import require_expose

    require_expose(args.expose, "the Reverb replay server", args.port)
    with reverb_logs_filtered():
        return _serve(store, args)


def _serve(store: Store, args: argparse.Namespace) -> int:
    from rlstore.replay import ReplayServer

    layout = layout_from(args)
    ref = store.resolve(args.ref)
    server = ReplayServer(store, ref, layout, port=args.port, restore=not args.fresh,
                          checkpoint_every=args.checkpoint_every, extra_tables=online_tables(store, ref, layout, args))
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        origin = (f"restored from {server.restored_from}" if server.restored_from
                  else "loaded " + ", ".join(f"{count} {name}" for name, count in server.loaded.items()))
        print(f"{ref}: {origin}")
        print_layout(server)
        when = (f"every {args.checkpoint_every:g} s and at shutdown" if args.checkpoint_every
                else "on request: reverb.Client(address).checkpoint()")
        print(f"checkpoints: {server.checkpoint_dir} ({when})")
        print(f"serving {ref} at {server.address} (every interface, port {server.port}, no authentication); "
              "Ctrl-C to stop", flush=True)
        while not stop.wait(3600):
            pass
    finally:
        saved = server.close()
    if saved:
        print(f"checkpoint saved: {saved}")
    print("stopped", flush=True)
    return 0
