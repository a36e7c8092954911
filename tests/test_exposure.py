"""No silent exposure: commands that start a Reverb server for other hosts refuse to start without
--expose, and the message names the address and says why (every interface, no authentication)."""
from rlstore.cli import main
from rlstore.store import Store
from tests.helpers import publish_episodes, vector_episode


def _refused(capsys, argv, address):
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for text in ("refusing to start", address, "every network interface", "no authentication", "--expose",
                 "README: Security"):
        assert text in lines[0], lines[0]


def test_serve_refuses_to_start_without_expose(tmp_path, capsys):
    publish_episodes(Store(tmp_path / "store"), "vec", [vector_episode(5, 0)])
    _refused(capsys, ["--store", str(tmp_path / "store"), "serve", "vec", "--port", "8123"], "0.0.0.0:8123")
    _refused(capsys, ["--store", str(tmp_path / "store"), "serve", "vec"], "0.0.0.0, a free port")


def test_run_replay_and_learner_roles_refuse_to_start_without_expose(tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--store", str(tmp_path / "store"), "run", "dqfd", "--env", "catch", "--env-steps", "100", "--out",
              str(out), "--replay-address", "replay.example:8124", "--learner-address", "learner.example:8125"]
    _refused(capsys, [*common, "--role", "replay"], "0.0.0.0:8124")
    _refused(capsys, [*common, "--role", "learner"], "0.0.0.0:8125")
    assert not out.exists()  # refused before anything was written
