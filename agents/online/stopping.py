"""Stopping an online run once the greedy policy is good enough (`rlstore run ... --stop-at-return R`).

A "solved" criterion: the supervisor stops the run, as Ctrl-C would (actors finish their
episode and commit, the learner checkpoints), as soon as one of actor 0's periodic evaluations
(logs/eval.csv, rlstore.agents.online.acting) reaches the mean return R, instead of playing the
rest of the env-step budget. Time-to-threshold benchmarks need no more than that point, and a
user who only wants a policy that solves the task gets it without waiting for the budget.

Only rows appended after the watch starts count: a resumed run's earlier evaluations are in
the same file, and one that had reached R must not stop the new session at once.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any


class ReturnReached:
    """Called, True once an evaluation row appended to `eval_csv` has return_mean >= `threshold`;
    `row` is then that row (its env steps as `step`, learner step, return, acting seconds)."""

    def __init__(self, eval_csv: str | Path, threshold: float):
        self._path = Path(eval_csv)
        self._threshold = threshold
        self._offset = self._size()  # rows already there belong to earlier sessions
        self._header: list[str] | None = self._read_header()
        self.row: dict[str, Any] | None = None

    def __call__(self) -> bool:
        if self.row is not None:
            return True
        size = self._size()
        if size <= self._offset:
            return False
        with self._path.open("rb") as stream:
            stream.seek(self._offset)
            data = stream.read(size - self._offset)
        complete = data[:data.rfind(b"\n") + 1]  # a row being written is read next time
        self._offset += len(complete)
        text = complete.decode()
        if self._header is None:  # the file was created by this session: its first line is the header
            header, _, text = text.partition("\n")
            self._header = next(csv.reader([header]))
        for values in csv.reader(io.StringIO(text)):
            row = {key: float(value) for key, value in zip(self._header, values) if value != ""}
            if row.get("return_mean", float("-inf")) >= self._threshold:
                self.row = row
                return True
        return False

    def _size(self) -> int:
        try:
            return self._path.stat().st_size
        except FileNotFoundError:
            return 0

    def _read_header(self) -> list[str] | None:
        if not self._offset:
            return None
        with self._path.open(newline="") as stream:
            return next(csv.reader([stream.readline()]))
