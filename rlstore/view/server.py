"""The viewer's HTTP server: stdlib `http.server`, threads, bound to 127.0.0.1 by default."""
from __future__ import annotations

import io
from functools import lru_cache
from html import escape
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlparse

import numpy as np

from rlstore.errors import RlstoreError, StoreError
from rlstore.names import DatasetRef
from rlstore.store import Store
from rlstore.view import pages
from rlstore.view.index import Indexes

MAX_ANIMATION_FRAMES = 300


class Viewer:
    """What the pages need, shared by the server's threads: the store and the episode indexes."""

    def __init__(self, store: Store):
        self.store = store
        self.indexes = Indexes(store)
        self.episode = lru_cache(maxsize=16)(self.indexes.episode)  # a page's frames decode the episode once

    def ref(self, query: dict[str, str]) -> DatasetRef:
        name = query.get("name")
        if not name:
            raise StoreError("no dataset named in the address (?name=...)")
        version = query.get("v")
        return self.store.resolve(DatasetRef(name, _integer(version, "v")) if version else name)

    def route(self, path: str, query: dict[str, str]) -> tuple[str, bytes]:
        """(content type, body) of one address; StoreError for what does not exist."""
        if path == "/":
            return "text/html", pages.home(self.store).encode()
        if path == "/dataset":
            return "text/html", pages.dataset(self.store, query.get("name", "")).encode()
        if path == "/version":
            page = _integer(query.get("page", "0"), "page")
            return "text/html", pages.version(self.store, self.indexes, self.ref(query), page).encode()
        if path == "/episode":
            ref = self.ref(query)
            return "text/html", pages.episode(self.store, self.indexes, ref, _integer(query.get("i"), "i")).encode()
        if path == "/frame":
            frames = self._frames(query)
            step = _integer(query.get("t", "0"), "t")
            if not 0 <= step < len(frames):
                raise StoreError(f"no step {step}: the episode has {len(frames)}")
            return "image/png", _image_bytes([frames[step]], "PNG")
        if path == "/animation.gif":
            frames = self._frames(query)
            every = max(1, -(-len(frames) // MAX_ANIMATION_FRAMES))
            return "image/gif", _image_bytes(list(frames[::every]), "GIF")
        if path == "/report.png":
            return "image/png", self._report(self.ref(query))
        raise StoreError(f"no page {path}")

    def _frames(self, query: dict[str, str]) -> np.ndarray:
        ref = self.ref(query)
        steps, _ = self.episode(ref, _integer(query.get("i"), "i"))
        field = query.get("field", "")
        if field not in steps or steps[field].dtype != np.uint8 or steps[field].ndim != 4:
            raise StoreError(f"{ref} has no image step field {field!r}")
        return steps[field]

    def _report(self, ref: DatasetRef) -> bytes:
        from rlstore.report_plot import plot_report

        report = self.store.manifest(ref).data.get("report")
        if report is None:
            raise StoreError(f"{ref} has no quality report")
        buffer = io.BytesIO()
        plot_report(report, str(ref), buffer)
        return buffer.getvalue()


def _integer(text: str | None, name: str) -> int:
    try:
        return int(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise StoreError(f"'{name}' must be a whole number, got {text!r}") from None


def _image_bytes(frames: list[np.ndarray], kind: str) -> bytes:
    from PIL import Image

    images = [Image.fromarray(frame[..., 0] if frame.shape[-1] == 1 else frame) for frame in frames]
    buffer = io.BytesIO()
    if kind == "GIF":
        images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=80, loop=0)
    else:
        images[0].save(buffer, format="PNG")
    return buffer.getvalue()


def _handler(viewer: Viewer) -> Callable[..., BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "rlstore-view"

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            address = urlparse(self.path)
            query = {key: values[-1] for key, values in parse_qs(address.query).items()}
            try:
                content_type, body = viewer.route(address.path, query)
                status = HTTPStatus.OK
            except RlstoreError as error:
                content_type, status = "text/html", HTTPStatus.NOT_FOUND
                body = pages.page("Not found", f"<p>{escape(error.readable())}</p>").encode()
            self.send_response(status)
            self.send_header("Content-Type", f"{content_type}; charset=utf-8" if content_type == "text/html"
                             else content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per request would drown the terminal; errors show in the page

    return Handler


def make_server(store: Store, host: str = "127.0.0.1", port: int = 8800) -> ThreadingHTTPServer:
    """A server for `store` (not yet serving: call `serve_forever()`); port 0 picks a free one."""
    server = ThreadingHTTPServer((host, port), _handler(Viewer(store)))
    server.daemon_threads = True
    return server
