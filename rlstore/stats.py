"""Mergeable summary statistics.

Moments (count, sum, sum of squares, min, max) merge exactly, so per-shard figures computed in
parallel combine into per-segment and per-version figures without re-reading any data.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Mapping


@dataclass
class Moments:
    count: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    min: float = math.inf
    max: float = -math.inf

    def add(self, value: float) -> "Moments":
        value = float(value)
        self.count += 1
        self.total += value
        self.total_sq += value * value
        self.min = min(self.min, value)
        self.max = max(self.max, value)
        return self

    def merge(self, other: "Moments") -> "Moments":
        return Moments(self.count + other.count, self.total + other.total, self.total_sq + other.total_sq,
                       min(self.min, other.min), max(self.max, other.max))

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    @property
    def std(self) -> float:
        if not self.count:
            return math.nan
        return math.sqrt(max(self.total_sq / self.count - self.mean ** 2, 0.0))

    def summary(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std, "min": self.min, "max": self.max}

    def to_json(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, float]) -> "Moments":
        return cls(**data)

    @classmethod
    def of(cls, values: Iterable[float]) -> "Moments":
        moments = cls()
        for value in values:
            moments.add(value)
        return moments


@dataclass
class EpisodeStats:
    """Episode return and length moments of a set of episodes."""

    returns: Moments
    lengths: Moments

    @classmethod
    def empty(cls) -> "EpisodeStats":
        return cls(Moments(), Moments())

    def add(self, episode_return: float, length: int) -> "EpisodeStats":
        self.returns.add(episode_return)
        self.lengths.add(length)
        return self

    def merge(self, other: "EpisodeStats") -> "EpisodeStats":
        return EpisodeStats(self.returns.merge(other.returns), self.lengths.merge(other.lengths))

    def to_json(self) -> dict:
        return {"episode_return": self.returns.to_json(), "episode_length": self.lengths.to_json()}

    @classmethod
    def from_json(cls, data: Mapping) -> "EpisodeStats":
        return cls(Moments.from_json(data["episode_return"]), Moments.from_json(data["episode_length"]))

    def summary(self) -> dict:
        return {"episode_return": self.returns.summary(), "episode_length": self.lengths.summary()}
