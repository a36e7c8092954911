"""Run logs: TensorBoard event files, one CSV per stream, and a progress bar.

CSV is what scripts and reports read (`logs/train.csv`, `logs/eval.csv`); TensorBoard is what
people browse (`tensorboard --logdir DIR/logs`). A resumed run appends to both; rows past the
restored step (written after the last checkpoint of a run that then died) are dropped first,
so a learning curve never has two values for one step.
"""
from __future__ import annotations

import csv
import math
import sys
import time
from pathlib import Path
from typing import Mapping

import tensorflow as tf
from tqdm import tqdm


class RunLogger:
    """Writes scalar metrics per stream ("train", "eval") and drives the progress bar."""

    def __init__(self, directory: str | Path, total_steps: int, initial_step: int = 0, progress: bool = True,
                 description: str = "train"):
        self._directory = Path(directory)
        self._directory.mkdir(parents=True, exist_ok=True)
        self._initial_step = initial_step
        self._fields: dict[str, list[str]] = {}
        self._summaries = tf.summary.create_file_writer(str(self._directory / "tensorboard"))
        self._bar = tqdm(total=total_steps, initial=initial_step, unit="update", desc=description,
                         disable=not progress, file=sys.stderr, dynamic_ncols=True)
        self._last_step, self._last_time = initial_step, time.perf_counter()

    def csv_path(self, stream: str) -> Path:
        return self._directory / f"{stream}.csv"

    def train_progress(self, step: int, metrics: Mapping[str, float]) -> dict[str, float]:
        """Logs training metrics at `step`, adding `updates_per_s` since the previous call; returns the row."""
        now = time.perf_counter()
        rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
        self._last_step, self._last_time = step, now
        row = {**metrics, "updates_per_s": rate}
        self.write("train", step, row)
        self._bar.set_postfix({"updates/s": f"{rate:,.0f}", "loss": f"{metrics.get('loss', math.nan):.4f}"}, refresh=False)
        self._bar.update(step - self._bar.n)
        return row

    def write(self, stream: str, step: int, values: Mapping[str, float]) -> None:
        """Appends one row (`step` plus `values`) to `<stream>.csv` and the TensorBoard log."""
        path = self.csv_path(stream)
        if stream not in self._fields:
            self._fields[stream] = self._open(path, ["step", *values])
        with path.open("a", newline="") as stream_file:
            csv.DictWriter(stream_file, self._fields[stream], extrasaction="ignore").writerow({"step": step, **values})
        with self._summaries.as_default(step=step):
            for name, value in values.items():
                tf.summary.scalar(f"{stream}/{name}", value)

    def message(self, text: str) -> None:
        """Prints a line without breaking the progress bar."""
        self._bar.write(text, file=sys.stderr)

    def close(self) -> None:
        self._bar.close()
        self._summaries.flush()

    def _open(self, path: Path, fields: list[str]) -> list[str]:
        """Keeps an existing file's header and its rows up to the initial step; else starts a new file."""
        if path.exists():
            with path.open(newline="") as stream_file:
                reader = csv.DictReader(stream_file)
                header = list(reader.fieldnames or fields)
                rows = [row for row in reader if int(float(row["step"])) <= self._initial_step]
        else:
            header, rows = fields, []
        with path.open("w", newline="") as stream_file:
            writer = csv.DictWriter(stream_file, header)
            writer.writeheader()
            writer.writerows(rows)
        return header


def read_csv(path: str | Path) -> list[dict[str, float]]:
    """The rows of a log CSV as floats (empty if the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="") as stream_file:
        return [{key: float(value) for key, value in row.items() if value not in ("", None)} for row in csv.DictReader(stream_file)]
