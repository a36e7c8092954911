"""Starting and supervising the processes of an online run, so that none is ever left behind.

Each part of a run (replay server, learner, actors) is a child Python process. The group:

- starts every child in a session of its own, so a terminal's Ctrl-C reaches only the
  supervisor, which then stops the children in order, once, with SIGINT (a clean shutdown:
  actors commit, the learner checkpoints, the replay server stops), and SIGKILLs those that do
  not exit within the timeout;
- hands every child the read end of a "lifeline" pipe whose write end only the supervisor
  holds. If the supervisor dies without stopping them (even by `kill -9`), the pipe closes and
  each child exits at once (see `watch_lifeline`), as if it had been killed with it;
- sends each child's stderr to `<log_dir>/<name>.log` (Reverb and TensorFlow log there, not on
  the terminal) and quotes its last lines when it fails; a child's stdout (its few progress
  lines) goes to the supervisor's stderr, so the supervisor's stdout stays its own (e.g. JSON).

`wait(names)` returns when the named children have exited with status 0 (or earlier, once its
`until` callable says so); if ANY child exits otherwise, it stops the rest and raises AgentError
naming the child, its status and its log.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from rlstore.agents.errors import AgentError
from rlstore.child_env import child_environment

LIFELINE_ENV = "RLSTORE_LIFELINE_FD"
_POLL_SECONDS = 0.1
_TAIL_LINES = 12

# How long a clean stop may take, all children together: actors commit their last episodes, the
# learner writes its final checkpoint. 20 s was too short at load 10+ on 2 cores (a learner was
# SIGKILLed mid-stop and the run failed); a hung child still dies, only later.
STOP_TIMEOUT_S = 60.0


class ProcessGroup:
    """Children started with `start`, supervised with `wait`, stopped with `stop` (always, on exit)."""

    def __init__(self, log_dir: str | Path | None = None):
        self._log_dir = Path(log_dir) if log_dir is not None else None
        self._children: dict[str, subprocess.Popen] = {}
        self._logs: dict[str, Path] = {}
        self._life_read, self._life_write = os.pipe()
        os.set_inheritable(self._life_read, True)

    def start(self, name: str, argv: list[str]) -> subprocess.Popen:
        """Runs `[sys.executable, *argv]` with the repository importable, as child `name`."""
        if name in self._children:
            raise AgentError(f"a process named {name!r} was already started")
        env = child_environment(**{LIFELINE_ENV: str(self._life_read)})
        stderr: Any = None
        if self._log_dir is not None:
            self._log_dir.mkdir(parents=True, exist_ok=True)
            self._logs[name] = self._log_dir / f"{name}.log"
            stderr = self._logs[name].open("ab")
        try:
            process = subprocess.Popen([sys.executable, *argv], env=env, stdout=2, stderr=stderr, stdin=subprocess.DEVNULL,
                                       pass_fds=(self._life_read,), start_new_session=True)
        finally:
            if stderr is not None:
                stderr.close()
        self._children[name] = process
        return process

    def wait(self, names: Sequence[str], until: Callable[[], bool] | None = None) -> bool:
        """Returns once every named child has exited 0 (True), or as soon as `until()` is true
        (False; the children still run); raises AgentError (after stopping every child) as soon as
        any child of the group exits with another status."""
        unknown = [name for name in names if name not in self._children]
        if unknown:
            raise AgentError(f"no process named {unknown[0]!r} was started")
        while True:
            for name, process in self._children.items():
                status = process.poll()
                if status not in (None, 0):
                    self.stop()
                    raise AgentError(self._failure(name, status))
            if all(self._children[name].poll() == 0 for name in names):
                return True
            if until is not None and until():
                return False
            time.sleep(_POLL_SECONDS)

    def stop(self, timeout: float = STOP_TIMEOUT_S, order: Sequence[str] | None = None) -> None:
        """SIGINT to every live child (those named in `order` first, each waited for in turn,
        then the rest together), then SIGKILL to any still alive after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        first = [name for name in (order or ()) if name in self._children]
        # Another Ctrl-C while stopping must not cut the stop short (children would then die
        # with the lifeline, losing what they had not committed).
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
        try:
            for name in first:
                self._interrupt([self._children[name]], deadline)
            self._interrupt([p for n, p in self._children.items() if n not in first], deadline)
        finally:
            if in_main:
                signal.signal(signal.SIGINT, previous)

    def returncode(self, name: str) -> int | None:
        return self._children[name].poll()

    def log(self, name: str) -> Path | None:
        return self._logs.get(name)

    def close(self) -> None:
        """Stops the children and drops the lifeline (children still alive then exit)."""
        try:
            self.stop()
        finally:
            for fd in (self._life_read, self._life_write):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def __enter__(self) -> "ProcessGroup":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @staticmethod
    def _interrupt(processes: list[subprocess.Popen], deadline: float) -> None:
        for process in processes:
            if process.poll() is None:
                try:
                    process.send_signal(signal.SIGINT)
                except ProcessLookupError:
                    pass
        for process in processes:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _failure(self, name: str, status: int) -> str:
        how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
        message = f"process {name!r} {how}"
        log = self._logs.get(name)
        if log is not None and log.is_file():
            lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
            message += f" (log: {log})"
            if lines:
                message += "; last lines:\n    " + "\n    ".join(lines[-_TAIL_LINES:])
        return message


def watch_lifeline() -> None:
    """In a child: exits the process at once when the supervisor's lifeline closes (it died).

    A no-op in a process that was not started by a ProcessGroup (e.g. `--role learner` run by hand).
    """
    fd = os.environ.pop(LIFELINE_ENV, None)
    if fd is None:
        return

    def watch() -> None:
        try:
            while os.read(int(fd), 1):
                pass
        except OSError:
            pass
        os._exit(1)

    threading.Thread(target=watch, name="lifeline", daemon=True).start()


def stop_event() -> threading.Event:
    """In a child: an event set by SIGINT or SIGTERM, which then mean "finish cleanly and exit 0".

    The loops check it between units of work (an episode, a chunk of updates); it never raises
    KeyboardInterrupt in the middle of a commit or a checkpoint.
    """
    event = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: event.set())
    return event
