"""The online run's plumbing: real child processes and signals, a real Reverb variable server."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

from rlstore.agents.errors import AgentError
from rlstore.agents.online.processes import ProcessGroup
from rlstore.agents.online.variables import VariableClient, VariableServer

# A child that exits 0 on SIGINT after writing where it stopped (the clean-shutdown contract).
_POLITE = textwrap.dedent("""
    import signal, sys, time
    from rlstore.agents.online.processes import watch_lifeline
    watch_lifeline()
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    open(sys.argv[1] + ".ready", "w").close()
    while not stop:
        time.sleep(0.02)
    open(sys.argv[1], "w").write("stopped cleanly")
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_variables_published_by_the_learner_reach_an_actor():
    learner = [tf.Variable(np.full((3, 2), 1.0, np.float32)), tf.Variable(np.arange(4))]
    actor = [tf.Variable(np.zeros((3, 2), np.float32)), tf.Variable(np.zeros(4, np.int64))]
    server = VariableServer(learner)
    client = VariableClient(server.address, actor, update_period=3)
    try:
        assert not client.wait(timeout=0.3) and client.step == -1  # nothing published yet
        server.publish(7)
        assert client.wait(timeout=10) and client.step == 7
        np.testing.assert_array_equal(actor[0].numpy(), learner[0].numpy())
        np.testing.assert_array_equal(actor[1].numpy(), [0, 1, 2, 3])
        learner[0].assign(learner[0] * 5)
        server.publish(9)
        client.update()
        client.update()
        assert client.step == 7  # two calls of a period of three: no fetch yet
        client.update()          # the third starts a fetch in the background
        deadline = time.monotonic() + 10
        while client.step != 9 and time.monotonic() < deadline:
            time.sleep(0.01)
            client.update()
        assert client.step == 9 and actor[0].numpy()[0, 0] == 5.0
    finally:
        client.close()
        server.close()


def test_a_failing_child_stops_the_group_and_is_named_with_its_log(tmp_path):
    marker = tmp_path / "polite.txt"
    with ProcessGroup(tmp_path / "logs") as group:
        polite = group.start("polite", ["-c", _POLITE, str(marker)])
        group.start("broken", ["-c", "import os, sys, time\nwhile not os.path.exists(sys.argv[1]): time.sleep(0.01)\n"
                                     "print('boom: bad input', file=sys.stderr); sys.exit(3)", f"{marker}.ready"])
        with pytest.raises(AgentError) as failure:
            group.wait(["polite"])
        message = str(failure.value)
        assert "'broken' exited with status 3" in message and "boom: bad input" in message
        assert polite.poll() == 0 and marker.read_text() == "stopped cleanly"


def test_wait_returns_when_the_named_children_succeed_and_stop_kills_stragglers(tmp_path):
    up = tmp_path / "up"
    with ProcessGroup(tmp_path / "logs") as group:
        group.start("quick", ["-c", "pass"])
        stubborn = group.start("stubborn", ["-c", "import signal, sys, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                                                  "open(sys.argv[1], 'w').close(); time.sleep(60)", str(up)])
        group.wait(["quick"])
        while not up.exists():  # SIGINT is ignored from here on
            time.sleep(0.01)
        assert stubborn.poll() is None
        group.stop(timeout=1.0)
        assert stubborn.returncode == -signal.SIGKILL


def test_children_exit_when_the_supervisor_is_killed(tmp_path):
    supervisor = textwrap.dedent(f"""
        import sys, time
        from rlstore.agents.online.processes import ProcessGroup
        group = ProcessGroup()
        child = group.start("child", ["-c", {_POLITE!r}, {str(tmp_path / 'never')!r}])
        print(child.pid, flush=True)
        time.sleep(60)
    """)
    process = subprocess.Popen([sys.executable, "-c", supervisor], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": os.getcwd()})
    child = int(process.stdout.readline())
    while not (tmp_path / "never.ready").exists():
        time.sleep(0.01)
    process.kill()  # SIGKILL: the supervisor cannot stop anything itself
    process.wait()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)
    assert not (tmp_path / "never").exists()  # it died with the supervisor, no clean shutdown


def test_return_reached_counts_only_complete_rows_appended_after_it_started(tmp_path):
    from rlstore.agents.online.stopping import ReturnReached

    path = tmp_path / "eval.csv"
    assert not ReturnReached(path, 0.5)()  # no file yet
    path.write_text("step,return_mean\n0,0.9\n")  # an earlier session's row reached it: not this session's
    reached = ReturnReached(path, 0.5)
    assert not reached()
    with path.open("a") as stream:
        stream.write("100,0.2\n200,0.")
    assert not reached() and reached.row is None  # 0. is half a row
    with path.open("a") as stream:
        stream.write("7\n")
    assert reached() and reached.row == {"step": 200.0, "return_mean": 0.7}
    fresh = tmp_path / "new.csv"
    watch = ReturnReached(fresh, 0.5)
    fresh.write_text("step,return_mean,acting_seconds\n0,-0.8,0.0\n300,0.6,4.5\n")
    assert watch() and watch.row == {"step": 300.0, "return_mean": 0.6, "acting_seconds": 4.5}
