"""Keeps Reverb's C++ log lines off a command's terminal.

Reverb's C++ code writes its log lines ("Started replay server on port ...", "Initializing
TFRecordCheckpointer ...", writer back-pressure warnings) with `std::clog` straight to file
descriptor 2, at every level and with no switch like TF_CPP_MIN_LOG_LEVEL. So a command that
runs a server sends fd 2 through a filter while it runs: lines that come from `reverb/cc/` are
dropped unless they report a failed check, and so are the bare `[` and empty fragments that
Reverb's threads leave when their log lines interleave, and gRPC core's JSON error dumps (the
command reports those errors itself, in one line); everything else passes.

The filter is this file run as a separate, stdlib-only Python process, not a thread: C++ code
may log while holding the GIL, and a full pipe would then block the only thread that could
drain it. The filter process exits when the last writer closes the pipe, even if its parent is
killed.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from typing import BinaryIO, Iterator

_NOISE = (b"reverb/cc/", b"pending items is alarmingly high", b"com_github_grpc_grpc")


def keep(line: bytes) -> bool:
    """Whether a line of fd 2 reaches the terminal."""
    if b"Check failed" in line:
        return True
    return line.strip() not in (b"", b"[") and not any(marker in line for marker in _NOISE)


def forward(source: BinaryIO, target: BinaryIO) -> None:
    """Copies the kept lines of `source` to `target` as they arrive."""
    for line in source:
        if keep(line):
            target.write(line)
            target.flush()


@contextlib.contextmanager
def reverb_logs_filtered() -> Iterator[None]:
    """While inside, fd 2 (Python's stderr and every C++ logger) goes through the filter."""
    sys.stderr.flush()
    original = os.dup(2)
    process = subprocess.Popen([sys.executable, "-S", __file__], stdin=subprocess.PIPE, stdout=original,
                               stderr=original)
    os.dup2(process.stdin.fileno(), 2)
    process.stdin.close()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(original, 2)  # drops the pipe's last writer: the filter drains it and exits
        os.close(original)
        process.wait()


if __name__ == "__main__":
    forward(sys.stdin.buffer, sys.stdout.buffer)
