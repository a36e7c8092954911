"""The viewer's HTML pages, each built from Store methods and at most one page of episodes."""
from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import urlencode

import numpy as np

from rlstore.names import DatasetRef
from rlstore.store import Store
from rlstore.view.charts import graph, line_chart
from rlstore.view.index import Indexes

EPISODES_PER_PAGE = 50
STRIP_FRAMES = 10
_STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse}
td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:left}th{background:#f4f4f4}
a{color:#2a5db0}.strip img{image-rendering:pixelated;margin:2px;border:1px solid #ccc}
.chart,.graph{display:block;margin:6px 0}nav{margin-bottom:1em}code{background:#f4f4f4;padding:1px 4px}"""


def link(path: str, **query: Any) -> str:
    return f"{path}?{urlencode(query)}"


def page(title: str, body: str, trail: list[tuple[str, str]] = ()) -> str:
    crumbs = " / ".join(f'<a href="{escape(href)}">{escape(text)}</a>' for text, href in
                        [("datasets", "/"), *trail])
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{escape(title)} - rlstore</title>"
            f"<style>{_STYLE}</style></head><body><nav>{crumbs}</nav><h1>{escape(title)}</h1>{body}</body></html>")


def table(headings: list[str], rows: list[list[str]]) -> str:
    """`rows` hold ready HTML (escape text before)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headings)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def home(store: Store) -> str:
    rows = []
    for name in store.datasets():
        manifest = store.manifest(name)
        rows.append([f'<a href="{escape(link("/dataset", name=name))}">{escape(name)}</a>',
                     f'<a href="{escape(link("/version", name=name, v=manifest.version))}">{manifest.version}</a>',
                     str(manifest.num_episodes), str(manifest.num_steps), escape(str(manifest.data.get("created")))])
    body = table(["dataset", "latest", "episodes", "steps", "created"], rows) if rows else \
        f"<p>No datasets in <code>{escape(str(store.root))}</code>.</p>"
    return page(f"rlstore: {store.root}", body)


def dataset(store: Store, name: str) -> str:
    versions = store.versions(name)
    if not versions:
        store.resolve(name)  # raises the store's error naming what exists
    rows, sources, ingested, runs, written, edges = [], {}, [], {}, [], []
    for number in versions:
        manifest = store.manifest(DatasetRef(name, number))
        lineage = dict(manifest.lineage)
        node = f"v{number}"
        label = f"{name}@{number} ({manifest.num_episodes} ep)"
        href = link("/version", name=name, v=number)
        run = lineage.get("run_id")
        if run is not None:
            runs.setdefault(f"run:{run}", (f"run:{run}", f"run {run}", None))
            written.append((node, label, href))
            edges.append((f"run:{run}", node))
        else:
            ingested.append((node, label, href))
        for source in lineage.get("sources", []) or []:
            path = str(source.get("path", source)) if isinstance(source, dict) else str(source)
            sources.setdefault(f"src:{path}", (f"src:{path}", path, None))
            edges.append((f"src:{path}", node))
        parent = lineage.get("parent_version")
        if parent is not None:
            edges.append((f"v{parent}", node))
        rows.append([f'<a href="{escape(href)}">{number}</a>', escape(str(manifest.data.get("created"))),
                     str(manifest.num_episodes), str(manifest.num_steps),
                     escape(str(lineage.get("pipeline", ""))), escape(str(lineage.get("format", run and "write-back") or "")),
                     escape(str(parent if parent is not None else ""))])
    columns = [("sources", list(sources.values())), ("versions", ingested), ("runs", list(runs.values())),
               ("write-back versions", written)]
    body = (f"<h2>Lineage</h2>{graph([c for c in columns if c[1]], edges)}<h2>Versions</h2>"
            + table(["version", "created", "episodes", "steps", "pipeline", "format", "parent"], rows))
    return page(name, body)


def version(store: Store, indexes: Indexes, ref: DatasetRef, page_number: int) -> str:
    manifest = store.manifest(ref)
    stats = manifest.stats.summary()
    summary = table(["", "mean", "std", "min", "max"], [
        [label] + [f"{stats[key][s]:.4g}" for s in ("mean", "std", "min", "max")]
        for label, key in (("return", "episode_return"), ("length", "episode_length"))])
    features = table(["field", "type"], [[escape(k), escape(v)] for k, v in manifest.schema.describe().items()])
    report = ""
    if manifest.data.get("report") is not None:
        warnings = manifest.data["report"].get("warnings", [])
        report = (f'<h2>Quality report</h2><img alt="quality report" width="900" '
                  f'src="{escape(link("/report.png", name=ref.name, v=ref.version))}">'
                  + "".join(f"<p>{escape(w.get('kind', ''))}: {escape(w.get('message', ''))}</p>" for w in warnings))
    index = indexes.get(ref)
    first = page_number * EPISODES_PER_PAGE
    rows = []
    for number in range(first, min(first + EPISODES_PER_PAGE, len(index))):
        steps, metadata = indexes.episode(ref, number)
        href = link("/episode", name=ref.name, v=ref.version, i=number)
        rows.append([f'<a href="{escape(href)}">{number}</a>', f"{float(np.sum(steps['reward'])):.4g}",
                     str(len(steps["is_last"])), "terminal" if steps["is_terminal"][-1] else "cut",
                     escape(", ".join(f"{k}={_short_value(v)}" for k, v in metadata.items()))])
    pages = (len(index) + EPISODES_PER_PAGE - 1) // EPISODES_PER_PAGE
    navigation = " ".join(
        f'<a href="{escape(link("/version", name=ref.name, v=ref.version, page=p))}">{label}</a>'
        for p, label in ((page_number - 1, "previous"), (page_number + 1, "next")) if 0 <= p < pages)
    body = (f"<p>{manifest.num_episodes} episodes, {manifest.num_steps} steps, created "
            f"{escape(str(manifest.data.get('created')))}</p>{summary}<h2>Features</h2>{features}{report}"
            f"<h2>Episodes {first}-{first + len(rows) - 1} of {len(index)}</h2>{navigation}"
            + table(["episode", "return", "length", "end", "metadata"], rows) + navigation)
    return page(str(ref), body, [(ref.name, link("/dataset", name=ref.name))])


def episode(store: Store, indexes: Indexes, ref: DatasetRef, number: int) -> str:
    steps, metadata = indexes.episode(ref, number)
    schema = store.manifest(ref).schema
    length = len(steps["is_last"])
    parts = [f"<p>return <b>{float(np.sum(steps['reward'])):.4g}</b>, length <b>{length}</b> steps, "
             f"{'terminal' if steps['is_terminal'][-1] else 'cut by a time limit (not terminal)'}</p>"]
    if metadata:
        parts.append(table(["episode metadata", "value"],
                           [[escape(k), escape(_short_value(v))] for k, v in metadata.items()]))
    parts.append("<h2>Reward, action, discount</h2>")
    for key in ("reward", "discount", *[k for k in steps if k == "action" or k.startswith("action/")]):
        if _plottable(steps[key]):
            parts.append(line_chart(key, steps[key]))
    images = []
    traces = []
    for key, spec in schema.steps.items():
        if key.split("/")[0] in ("reward", "discount", "action", "is_first", "is_last", "is_terminal"):
            continue
        value = steps[key]
        if spec.is_image or (value.dtype == np.uint8 and value.ndim == 4):
            images.append(key)
        elif _plottable(value):
            traces.append(line_chart(key, value))
    if traces:
        parts.append("<h2>Observations and step fields</h2>" + "".join(traces))
    for key in images:
        parts.append(_image_block(ref, number, key, length))
    navigation = " ".join(f'<a href="{escape(link("/episode", name=ref.name, v=ref.version, i=i))}">{label}</a>'
                          for i, label in ((number - 1, "previous episode"), (number + 1, "next episode"))
                          if 0 <= i < len(indexes.get(ref)))
    return page(f"{ref} episode {number}", navigation + "".join(parts),
                [(ref.name, link("/dataset", name=ref.name)), (str(ref), link("/version", name=ref.name, v=ref.version))])


def _image_block(ref: DatasetRef, number: int, key: str, length: int) -> str:
    query = {"name": ref.name, "v": ref.version, "i": number, "field": key}
    picks = sorted({int(t) for t in np.linspace(0, length - 1, min(STRIP_FRAMES, length))})
    strip = "".join(f'<img height="64" title="step {t}" src="{escape(link("/frame", **query, t=t))}">' for t in picks)
    slot = "frame-" + key.replace("/", "-")
    scrubber = (f'<p><img id="{escape(slot)}" height="192" src="{escape(link("/frame", **query, t=0))}"><br>'
                f'<input type="range" min="0" max="{length - 1}" value="0" style="width:480px" '
                f'oninput="document.getElementById(\'{escape(slot)}\').src=\'{escape(link("/frame", **query))}&amp;t=\'+this.value;'
                f'this.nextElementSibling.textContent=\'step \'+this.value"> <span>step 0</span></p>')
    animation = f'<p><img height="192" alt="animation" src="{escape(link("/animation.gif", **query))}"></p>'
    return f"<h2>{escape(key)}</h2><div class=strip>{strip}</div>{scrubber}{animation}"


def _plottable(value: np.ndarray) -> bool:
    return value.dtype.kind in "biuf" and value.ndim <= 3


def _short_value(value: Any) -> str:
    value = np.asarray(value)
    if value.dtype == object and value.ndim == 0:
        item = value.item()
        return item.decode(errors="replace") if isinstance(item, bytes) else str(item)
    text = np.array2string(value, threshold=6) if value.ndim else str(value.item())
    return text if len(text) < 80 else text[:77] + "..."
