"""The data-quality report, computed inside the ingest pipeline by a Beam CombineFn.

`QualityCombineFn` folds checked episodes into a small mergeable accumulator and turns the
merged accumulator into the report stored in the version's manifest. The ingest DoFn
pre-combines each work item's episodes with it (what Beam's combiner lifting does on the
DirectRunner; the DaskRunner does no lifting and would otherwise ship whole episodes), and the
pipeline merges those partial accumulators with `merge_accumulators` and finishes with
`extract_output`. No second pass over the data is made.

What it holds (for the episodes a version adds):
- counts: episodes, steps, transitions, terminal and time-limit-truncated episodes;
- episode return and length: mean, std, min, max and a mergeable histogram;
- per-feature statistics for every numeric step field (not is_first/is_last/is_terminal, not
  text): min, max, mean, std per element for fields of at most ELEMENTWISE_MAX elements (state
  vectors, actions), pooled over elements for larger ones (images), as `per` says. Action,
  reward and discount are taken over transitions only: the last step's are RLDS zero filler;
- per-element histograms of actions (unit bins for discrete actions);
- warnings: single-step episodes, constant features (min == max; discount is exempt, since a
  dataset without terminals always has discount 1), reward outliers, and every note a reader
  attached to an episode (rlstore.pipelines.notes: truncated final episodes, D4RL observation
  jumps, which is how out-of-sync timeouts show).

Reward outliers use robust statistics, so that the outliers themselves cannot hide them and
rare but legitimate rewards are not called outliers. Rewards that take at most MAX_LEVELS
distinct values (Pong's -1/0/+1, a sparse task's 0/1 goal reward) are levels, never outliers.
Otherwise a reward is an outlier when it lies more than OUTLIER_SCALES robust standard
deviations (IQR / 1.349, which is the std of a normal distribution) from the median, both read
off a mergeable quantile sketch; if the middle half of the rewards is one value (IQR 0) there
is no scale to judge by and nothing is flagged. The count comes from the sketch (so "at least")
and the examples are the most extreme rewards, at most one per episode.
NaN and infinite values are never stored: Schema.check rejects the episode. So they appear in
the report through the rejects (`add_rejects`): under --on-error=skip as a `non_finite`
warning naming the rejected episodes; under --on-error=fail the ingest stops instead.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import apache_beam as beam
import numpy as np

from rlstore.pipelines.notes import OBSERVATION_JUMP, REPAIRED_IS_LAST, TRUNCATED, Note
from rlstore.pipelines.summaries import Columns, Histogram, Ranked
from rlstore.stats import Moments
from rlstore.episode import Episode
from rlstore.errors import Location
from rlstore.images import EncodedImages
from rlstore.nest import flatten
from rlstore.schema import Schema

REPORT_FORMAT = "rlstore.quality/1"
ELEMENTWISE_MAX = 512       # larger fields (images) get statistics pooled over their elements
OUTLIER_SCALES = 6.0
_IQR_PER_STD = 1.349        # the interquartile range of a normal distribution, in standard deviations
EXAMPLES = 5
_FLAGS = ("is_first", "is_last", "is_terminal")
_TRANSITION_FIELDS = ("action", "reward", "discount")

EpisodeInput = tuple[Location, Episode, Sequence[Note], int, float]


def _root(key: str) -> str:
    return key.split("/", 1)[0]


def _where_key(where: Location, step: int | None = None) -> tuple:
    episode = where.episode
    return (where.file or "", episode if isinstance(episode, int) else -1, str(episode), -1 if step is None else step)


def _where_json(where: Location, **extra: Any) -> dict[str, Any]:
    return {"file": where.file, "episode": where.episode, **{k: v for k, v in extra.items() if v is not None}}


@dataclass
class Tally:
    """How often something happened, and the first few places (by file, episode, step)."""

    count: int = 0
    examples: Ranked = field(default_factory=lambda: Ranked(EXAMPLES))

    def add(self, key: tuple, example: Mapping[str, Any]) -> None:
        self.count += 1
        self.examples.add([(key, dict(example))])

    def merge(self, other: "Tally") -> "Tally":
        return Tally(self.count + other.count, self.examples.merge(other.examples))


@dataclass
class QualityAccumulator:
    """Everything the report needs, in mergeable form (features are keyed by flat step field)."""

    episodes: int = 0
    steps: int = 0
    terminal: int = 0
    returns: Columns = field(default_factory=lambda: Columns(integer=False, histograms=True))
    lengths: Columns = field(default_factory=lambda: Columns(integer=True, histograms=True))
    features: dict[str, Columns] = field(default_factory=dict)
    rewards: Columns = field(default_factory=lambda: Columns(integer=False, histograms=True, robust=True))
    lowest_rewards: Ranked = field(default_factory=lambda: Ranked(EXAMPLES))
    highest_rewards: Ranked = field(default_factory=lambda: Ranked(EXAMPLES))
    single_step: Tally = field(default_factory=Tally)
    notes: dict[str, Tally] = field(default_factory=dict)


class QualityCombineFn(beam.CombineFn):
    """Episodes (with their location, reader notes, length and return) → the quality report."""

    def __init__(self, schema: Mapping[str, Any]):
        specs = Schema.from_json(schema).steps
        self._numeric = {key: spec for key, spec in specs.items() if key not in _FLAGS and spec.dtype != "str"}

    def create_accumulator(self) -> QualityAccumulator:
        return QualityAccumulator()

    def add_input(self, acc: QualityAccumulator, element: EpisodeInput) -> QualityAccumulator:
        where, episode, notes, length, episode_return = element
        steps = flatten(episode["steps"])
        acc.episodes += 1
        acc.steps += length
        acc.terminal += bool(np.asarray(steps["is_terminal"])[-1])
        acc.returns.add(np.array([[episode_return]]))
        acc.lengths.add(np.array([[length]]))
        if length == 1:
            acc.single_step.add(_where_key(where), _where_json(where))
        for key, spec in self._numeric.items():
            if isinstance(steps[key], EncodedImages):
                continue  # kept as the source encoded them; statistics would need every image decoded
            rows = np.asarray(steps[key]).reshape(length, -1)
            if _root(key) in _TRANSITION_FIELDS:
                rows = rows[:-1]
            columns = acc.features.get(key)
            if columns is None:
                columns = acc.features[key] = Columns(integer=spec.dtype[0] in "biu", histograms=_root(key) == "action")
            columns.add(rows if rows.shape[1] <= ELEMENTWISE_MAX else rows.reshape(-1, 1))
        self._add_rewards(acc, where, steps, length)
        for note in notes:
            tally = acc.notes.setdefault(note["kind"], Tally())
            tally.add(_where_key(where, note.get("step")), _where_json(where, step=note.get("step"), message=note["message"]))
        return acc

    @staticmethod
    def _add_rewards(acc: QualityAccumulator, where: Location, steps: Mapping[str, Any], length: int) -> None:
        """Every reward of every transition, pooled; the episode's lowest and highest go to the ranking."""
        keys = [key for key in steps if _root(key) == "reward"]
        table = np.concatenate([np.asarray(steps[k], np.float64).reshape(length, -1)[:-1] for k in keys], axis=1)
        if not table.size:
            return
        acc.rewards.add(table.reshape(-1, 1))
        width = table.shape[1]
        for ranked, index, sign in ((acc.lowest_rewards, int(table.argmin()), 1.0), (acc.highest_rewards, int(table.argmax()), -1.0)):
            value, step = float(table.flat[index]), index // width
            ranked.add([((sign * value, *_where_key(where, step)), _where_json(where, step=step, value=value))])

    def merge_accumulators(self, accumulators) -> QualityAccumulator:
        merged = QualityAccumulator()
        for acc in accumulators:
            merged.episodes += acc.episodes
            merged.steps += acc.steps
            merged.terminal += acc.terminal
            merged.returns = merged.returns.merge(acc.returns)
            merged.lengths = merged.lengths.merge(acc.lengths)
            for key, columns in acc.features.items():
                merged.features[key] = merged.features[key].merge(columns) if key in merged.features else columns
            merged.rewards = merged.rewards.merge(acc.rewards)
            merged.lowest_rewards = merged.lowest_rewards.merge(acc.lowest_rewards)
            merged.highest_rewards = merged.highest_rewards.merge(acc.highest_rewards)
            merged.single_step = merged.single_step.merge(acc.single_step)
            for kind, tally in acc.notes.items():
                merged.notes[kind] = merged.notes.get(kind, Tally()).merge(tally)
        return merged

    def compact(self, acc: QualityAccumulator) -> QualityAccumulator:
        """Summarises buffered rows, so an accumulator travels as summaries, not data."""
        for columns in (acc.returns, acc.lengths, acc.rewards, *acc.features.values()):
            columns.flush()
        return acc

    def extract_output(self, acc: QualityAccumulator) -> dict[str, Any]:
        self.compact(acc)
        return {
            "format": REPORT_FORMAT,
            "counts": {"episodes": acc.episodes, "steps": acc.steps, "transitions": acc.steps - acc.episodes,
                       "terminal_episodes": acc.terminal, "truncated_episodes": acc.episodes - acc.terminal},
            "episode_return": _distribution(acc.returns),
            "episode_length": _distribution(acc.lengths),
            "features": {f"steps/{key}": self._feature(key, columns.moments) for key, columns in sorted(acc.features.items())},
            "actions": {f"steps/{key}": {"discrete": columns.integer, "histograms": [h.to_json() for h in columns.bins]}
                        for key, columns in sorted(acc.features.items()) if columns.histograms},
            "warnings": _warnings(acc),
        }

    def _feature(self, key: str, moments: Moments) -> dict[str, Any]:
        spec = self._numeric[key]
        per = "element" if int(np.prod(spec.shape)) <= ELEMENTWISE_MAX else "field"
        return {"dtype": spec.dtype, "shape": list(spec.shape), "per": per, "count": moments.count,
                "min": _floats(moments.min), "max": _floats(moments.max), "mean": _floats(moments.mean),
                "std": _floats(moments.std)}


def _distribution(columns: Columns) -> dict[str, Any]:
    """Moments and histogram of a one-column Columns (episode returns or lengths); None when empty."""
    if columns.moments is None:
        return {"mean": None, "std": None, "min": None, "max": None, "histogram": Histogram.empty(columns.integer).to_json()}
    summary = {key: _floats(getattr(columns.moments, key))[0] for key in ("mean", "std", "min", "max")}
    return {**summary, "histogram": columns.bins[0].to_json()}


def _floats(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, np.float64)]


def _warning(kind: str, count: int, message: str, examples: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": kind, "count": count, "message": message, "examples": examples}


def _warnings(acc: QualityAccumulator) -> list[dict[str, Any]]:
    warnings = []
    if acc.single_step.count:
        warnings.append(_warning("single_step_episode", acc.single_step.count,
                                 f"{acc.single_step.count} episode(s) have a single step and no transition",
                                 acc.single_step.examples.payloads()))
    wording = {TRUNCATED: "episode(s) were cut off by the end of their file and kept as truncated",
               OBSERVATION_JUMP: "step(s) where next_observations disagrees with the following step's observation "
                                 "(out-of-sync timeouts?)",
               REPAIRED_IS_LAST: "episode(s) had no step marked is_last (windows cut from longer episodes?) and were "
                                 "kept as truncations: the last step became is_last, is_terminal=False"}
    for kind, tally in sorted(acc.notes.items()):
        warnings.append(_warning(kind, tally.count, f"{tally.count} {wording.get(kind, f'reader note(s) of kind {kind}')}",
                                 tally.examples.payloads()))
    constant = [{"field": f"steps/{key}", "element": int(index), "value": float(moments.min[index])}
                for key, moments in sorted((k, c.moments) for k, c in acc.features.items())
                if _root(key) != "discount" and moments.count > 1
                for index in np.flatnonzero(moments.min == moments.max)]
    if constant:
        names = ", ".join(f"{c['field']}[{c['element']}]={c['value']:.4g}" for c in constant[:EXAMPLES])
        warnings.append(_warning("constant_feature", len(constant),
                                 f"{len(constant)} feature element(s) never change: {names}", constant[:EXAMPLES]))
    warnings.extend(_reward_outliers(acc))
    return warnings


def _reward_outliers(acc: QualityAccumulator) -> list[dict[str, Any]]:
    rewards = acc.rewards
    if rewards.moments is None or rewards.moments.count < 2 or rewards.levels[0].values is not None:
        return []  # too few, or a few discrete levels
    sketch = rewards.sketches[0]
    median, low_quartile, high_quartile = (sketch.quantile(q) for q in (0.5, 0.25, 0.75))
    scale = (high_quartile - low_quartile) / _IQR_PER_STD
    if scale <= 0:
        return []
    low, high = median - OUTLIER_SCALES * scale, median + OUTLIER_SCALES * scale
    extremes = [e for e in (*acc.lowest_rewards.payloads(), *acc.highest_rewards.payloads())
                if not low <= e["value"] <= high]
    count = max(sketch.count_outside(low, high), len(extremes))
    if not count or not extremes:
        return []
    message = (f"at least {count} reward(s) lie more than {OUTLIER_SCALES:g} robust std from the median "
               f"({median:.4g}; robust std {scale:.4g} = IQR/1.349); most extreme: {extremes[0]['value']:.4g}")
    return [_warning("reward_outlier", count, message, extremes)]


def add_rejects(report: Mapping[str, Any], rejects: Sequence[Mapping[str, Any]],
                rejects_file: Mapping[str, Any] | None) -> dict[str, Any]:
    """The report with the rejected episodes (--on-error=skip) counted and warned about.

    Rejects lead the warnings: an episode with NaN or infinite values is a `non_finite`
    warning as well as a reject, since that is the value problem the user must go and fix.
    """
    report = dict(report)
    report["counts"] = {**report["counts"], "rejected_episodes": len(rejects)}
    report["rejects"] = dict(rejects_file) if rejects_file else None
    found = []
    non_finite = [r for r in rejects if r.get("non_finite")]
    if non_finite:
        found.append(_warning("non_finite", len(non_finite),
                              f"{len(non_finite)} episode(s) hold NaN or infinite values and were rejected",
                              list(non_finite[:EXAMPLES])))
    if rejects:
        found.append(_warning("rejected", len(rejects), f"{len(rejects)} episode(s) were rejected "
                              f"(first reason: {rejects[0]['reason']})", list(rejects[:EXAMPLES])))
    report["warnings"] = found + list(report["warnings"])
    return report
