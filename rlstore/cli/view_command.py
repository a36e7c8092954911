"""`rlstore view [--port P]`: a local web app to look at the store (see `rlstore.view`)."""
from __future__ import annotations

import argparse
from typing import Sequence

from rlstore.store import Store


def register(commands) -> None:
    view = commands.add_parser(
        "view", help="look at the store in a web browser (datasets, lineage, quality, episodes)",
        description="Serves a local web app over the store: datasets, versions and their lineage graph, the "
                    "quality report, and per episode its return, length, reward/action/discount over time, "
                    "vector observations as traces and image observations as frames you can scrub. It reads "
                    "the store in place and only what a page shows. Stop it with Ctrl-C.")
    view.add_argument("--port", type=int, default=8800, help="port to listen on (default 8800; 0: any free port)")
    view.add_argument("--host", default="127.0.0.1",
                      help="address to bind (default 127.0.0.1: this machine only; the viewer has no login)")
    view.set_defaults(run=_view)


def _view(store: Store, args: argparse.Namespace, _: Sequence[str]) -> int:
    from rlstore.view import make_server

    server = make_server(store, args.host, args.port)
    host, port = server.server_address[:2]
    print(f"viewing {store.root} at http://{host}:{port}/  (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
