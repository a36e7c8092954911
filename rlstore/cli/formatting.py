"""Plain-text tables and JSON that the CLI prints."""
from __future__ import annotations

import json
import math
from typing import Any


def table(header: list[str], rows: list[list[Any]], indent: int = 0) -> str:
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(" " * indent + line for line in lines)


def to_json(value: Any) -> str:
    """Indented JSON; non-finite floats (stats of empty sets) become null."""
    def clean(item: Any) -> Any:
        if isinstance(item, float) and not math.isfinite(item):
            return None
        if isinstance(item, dict):
            return {k: clean(v) for k, v in item.items()}
        if isinstance(item, (list, tuple)):
            return [clean(v) for v in item]
        return item

    return json.dumps(clean(value), indent=1)
