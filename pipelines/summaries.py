"""Mergeable summaries of numbers: what the quality report's combiner keeps per work item.

Each summary merges exactly (or deterministically) with another of its kind, in any order, so
workers summarise their own episodes and Beam merges the pieces without seeing the data again:
- Histogram: bins of width 2**e aligned at 0. Two histograms merge by coarsening the finer one
  to the wider width (exact, since a wide bin is the union of two narrow ones), so no bin edges
  have to be agreed on before the data is seen. At most MAX_BINS bins are kept.
- Columns: `rlstore.stats.Moments` (count, mean, M2, min and max per element, merged by Chan
  et al.'s update; the store's one implementation of moments) and optionally a Histogram, per
  column of a table that arrives in pieces, e.g. one episode at a time. Pieces are buffered and summarised FLUSH_VALUES at a
  time: numpy's per-call cost, not the arithmetic, dominates for short episodes.
- QuantileSketch: counts in logarithmic buckets (DDSketch, Masson et al. 2019): every quantile
  within QUANTILE_ACCURACY of the true value relative to it, merged exactly by adding counts.
  The quality report's robust statistics (median, quartiles) come from it.
- Levels: the distinct values seen, up to MAX_LEVELS (then "many"): tells rewards that take a
  few discrete levels (Pong's -1/0/+1, a sparse goal's 0/1) from continuous ones.
- Ranked: the few items with the smallest sort keys; used for the most extreme rewards and
  for the first examples of a warning, so the report names the same ones whatever the order
  of merging.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from rlstore.stats import Moments

MAX_BINS = 64
_FLOAT_EXPONENT = -20       # finest bin width for floats: 2**-20
_EXACT_INDEX_BITS = 52      # keeps value / width exactly representable and inside int64


@dataclass
class Histogram:
    """Counts in bins [i * 2**exponent, (i + 1) * 2**exponent) for i = offset, offset + 1, ..."""

    exponent: int
    offset: int = 0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @classmethod
    def empty(cls, integer: bool) -> "Histogram":
        """Integers start with unit-wide bins (one per value); floats with 2**-20."""
        return cls(0 if integer else _FLOAT_EXPONENT)

    def add(self, values: np.ndarray) -> "Histogram":
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if not values.size:
            return self
        low, high = float(values.min()), float(values.max())
        exponent = self.exponent
        while not _fits(low, high, exponent):
            exponent += 1
        index = np.floor(values / 2.0 ** exponent).astype(np.int64)
        offset = int(index.min())
        return self.merge(Histogram(exponent, offset, np.bincount(index - offset).astype(np.int64)))

    def merge(self, other: "Histogram") -> "Histogram":
        if not other.counts.size:
            return self if self.counts.size or self.exponent >= other.exponent else other
        if not self.counts.size:
            return other.coarsened(max(self.exponent, other.exponent))
        exponent = max(self.exponent, other.exponent)
        while True:
            a, b = self.coarsened(exponent), other.coarsened(exponent)
            low, high = min(a.offset, b.offset), max(a.offset + len(a.counts), b.offset + len(b.counts))
            if high - low <= MAX_BINS:
                break
            exponent += 1
        counts = np.zeros(high - low, np.int64)
        counts[a.offset - low: a.offset - low + len(a.counts)] += a.counts
        counts[b.offset - low: b.offset - low + len(b.counts)] += b.counts
        return Histogram(exponent, low, counts)

    def coarsened(self, exponent: int) -> "Histogram":
        """The same counts in bins 2**(exponent - self.exponent) times as wide."""
        shift = exponent - self.exponent
        if shift <= 0 or not self.counts.size:
            return Histogram(max(exponent, self.exponent), self.offset >> max(shift, 0), self.counts)
        index = (np.arange(len(self.counts), dtype=np.int64) + self.offset) >> shift
        offset = int(index[0])
        counts = np.zeros(int(index[-1]) - offset + 1, np.int64)
        np.add.at(counts, index - offset, self.counts)
        return Histogram(exponent, offset, counts)

    def count_outside(self, low: float, high: float) -> int:
        """Values certainly below `low` or above `high` (bins entirely beyond them)."""
        width = 2.0 ** self.exponent
        starts = (np.arange(len(self.counts)) + self.offset) * width
        return int(self.counts[(starts + width <= low) | (starts > high)].sum())

    def to_json(self) -> dict[str, Any]:
        width = 2.0 ** self.exponent
        return {"start": self.offset * width, "bin_width": width, "counts": self.counts.tolist()}


def _fits(low: float, high: float, exponent: int) -> bool:
    width = 2.0 ** exponent
    if max(abs(low), abs(high)) / width >= 2.0 ** _EXACT_INDEX_BITS:
        return False
    return math.floor(high / width) - math.floor(low / width) < MAX_BINS


QUANTILE_ACCURACY = 0.01
_GAMMA = (1 + QUANTILE_ACCURACY) / (1 - QUANTILE_ACCURACY)
_LOG_GAMMA = math.log(_GAMMA)
_ZERO = 1e-12               # magnitudes at or below count as 0 (their own bucket)


@dataclass
class QuantileSketch:
    """Value counts in buckets (gamma**(k-1), gamma**k] of magnitude, per sign, plus a zero bucket."""

    positive: dict[int, int] = field(default_factory=dict)
    negative: dict[int, int] = field(default_factory=dict)
    zero: int = 0

    def add(self, values: np.ndarray) -> "QuantileSketch":
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        values = values[np.isfinite(values)]
        magnitude = np.abs(values)
        small = magnitude <= _ZERO
        self.zero += int(small.sum())
        for store, chosen in ((self.positive, (values > 0) & ~small), (self.negative, (values < 0) & ~small)):
            if chosen.any():
                keys, counts = np.unique(np.ceil(np.log(magnitude[chosen]) / _LOG_GAMMA).astype(np.int64),
                                         return_counts=True)
                for key, count in zip(keys.tolist(), counts.tolist()):
                    store[key] = store.get(key, 0) + count
        return self

    def merge(self, other: "QuantileSketch") -> "QuantileSketch":
        merged = QuantileSketch(dict(self.positive), dict(self.negative), self.zero + other.zero)
        for mine, theirs in ((merged.positive, other.positive), (merged.negative, other.negative)):
            for key, count in theirs.items():
                mine[key] = mine.get(key, 0) + count
        return merged

    @property
    def count(self) -> int:
        return self.zero + sum(self.positive.values()) + sum(self.negative.values())

    def _buckets(self) -> list[tuple[float, float, int]]:
        """(low, high, count) of every bucket, in increasing order of value."""
        def bounds(key: int) -> tuple[float, float]:
            return _GAMMA ** (key - 1), _GAMMA ** key

        buckets = [(-bounds(k)[1], -bounds(k)[0], c) for k, c in sorted(self.negative.items(), reverse=True)]
        if self.zero:
            buckets.append((-_ZERO, _ZERO, self.zero))
        return buckets + [(*bounds(k), c) for k, c in sorted(self.positive.items())]

    def quantile(self, q: float) -> float | None:
        """The q-quantile (0 <= q <= 1), within QUANTILE_ACCURACY of the true one; None when empty."""
        total = self.count
        if not total:
            return None
        rank, seen = q * (total - 1), 0
        for low, high, count in self._buckets():
            seen += count
            if seen > rank:
                if low == -_ZERO:
                    return 0.0
                return math.copysign(2 * min(abs(low), abs(high)) * _GAMMA / (_GAMMA + 1), high)
        return None

    def count_outside(self, low: float, high: float) -> int:
        """Values certainly below `low` or above `high` (buckets entirely beyond them)."""
        return sum(count for start, end, count in self._buckets() if end < low or start > high)


MAX_LEVELS = 16


@dataclass
class Levels:
    """The distinct values seen while there are at most MAX_LEVELS of them; `values` is None after."""

    values: frozenset | None = frozenset()

    def add(self, values: np.ndarray) -> "Levels":
        if self.values is not None:
            self.values = _capped(self.values | frozenset(np.unique(np.asarray(values, np.float64)).tolist()))
        return self

    def merge(self, other: "Levels") -> "Levels":
        if self.values is None or other.values is None:
            return Levels(None)
        return Levels(_capped(self.values | other.values))


def _capped(values: frozenset) -> frozenset | None:
    return values if len(values) <= MAX_LEVELS else None


FLUSH_VALUES = 1 << 16


@dataclass
class Columns:
    """Moments, and histograms if asked, of each column of rows added piece by piece."""

    integer: bool
    histograms: bool
    robust: bool = False  # also a QuantileSketch and the Levels of each column
    moments: Moments | None = None
    bins: list[Histogram] = field(default_factory=list)
    sketches: list[QuantileSketch] = field(default_factory=list)
    levels: list[Levels] = field(default_factory=list)
    pending: list[np.ndarray] = field(default_factory=list)
    pending_values: int = 0

    def add(self, rows: np.ndarray) -> "Columns":
        """Adds a (rows, columns) table; every table of one Columns has the same column count."""
        self.pending.append(rows)
        self.pending_values += rows.size
        return self.flush() if self.pending_values >= FLUSH_VALUES else self

    def flush(self) -> "Columns":
        if not self.pending:
            return self
        table = np.concatenate(self.pending).astype(np.float64, copy=False)
        self.pending, self.pending_values = [], 0
        moments = Moments.of(table)
        self.moments = moments if self.moments is None else self.moments.merge(moments)
        if self.histograms:
            bins = self.bins or [Histogram.empty(self.integer) for _ in range(table.shape[1])]
            self.bins = [histogram.add(column) for histogram, column in zip(bins, table.T)]
        if self.robust:
            sketches = self.sketches or [QuantileSketch() for _ in range(table.shape[1])]
            levels = self.levels or [Levels() for _ in range(table.shape[1])]
            self.sketches = [sketch.add(column) for sketch, column in zip(sketches, table.T)]
            self.levels = [level.add(column) for level, column in zip(levels, table.T)]
        return self

    def merge(self, other: "Columns") -> "Columns":
        mine, theirs = self.flush(), other.flush()
        if theirs.moments is None:
            return mine
        if mine.moments is None:
            return theirs
        return Columns(self.integer, self.histograms, self.robust, mine.moments.merge(theirs.moments),
                       [a.merge(b) for a, b in zip(mine.bins, theirs.bins)],
                       [a.merge(b) for a, b in zip(mine.sketches, theirs.sketches)],
                       [a.merge(b) for a, b in zip(mine.levels, theirs.levels)])


@dataclass
class Ranked:
    """The `size` items with the smallest keys seen so far; items are (key, payload) pairs."""

    size: int
    items: list[tuple[Any, Any]] = field(default_factory=list)

    def add(self, pairs: Iterable[tuple[Any, Any]]) -> "Ranked":
        self.items = heapq.nsmallest(self.size, [*self.items, *pairs], key=lambda pair: pair[0])
        return self

    def merge(self, other: "Ranked") -> "Ranked":
        return Ranked(self.size, list(self.items)).add(other.items)

    def payloads(self) -> list[Any]:
        return [payload for _, payload in self.items]
