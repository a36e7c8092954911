"""BC and DQfD with the conv torso on Atari frames stored once (a `dqn_replay` ingest of real ALE
frames written by Dopamine): the networks see the readers' rebuilt 84x84x4 stacks, and a tiny
budget of updates learns (the frames' logged actions are memorised: loss falls, accuracy rises)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np

from rlstore.agents.logging import read_csv
from rlstore.agents.runs import load_trained
from rlstore.agents.specs import specs_from_schema
from rlstore.agents.training import Schedule, train
from rlstore.cli import main
from rlstore.quiet import XLA_BANNER

SMALL = {"batch_size": 32, "hidden_sizes": (32,), "learning_rate": 1e-3}


def test_stacked_frames_are_stacked_images_to_the_networks(dopamine_store):
    specs = specs_from_schema(dopamine_store.manifest("atari").schema, num_actions=4)
    assert specs.observation[""].shape == (84, 84, 4) and specs.observation[""].image


def test_bc_cli_learns_from_atari_frames(dopamine_store, tmp_path, capsys):
    out = tmp_path / "bc"
    code = main(["--store", str(dopamine_store.root), "train", "bc", "--dataset", "atari", "--steps", "120",
                 "--log-every", "40", "--batch-size", "32", "--hidden-sizes", "32", "--learning-rate", "1e-3",
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    rows = read_csv(out / "logs" / "train.csv")
    assert rows[-1]["loss"] < rows[0]["loss"] - 0.02 and rows[-1]["accuracy"] > rows[0]["accuracy"] + 0.03
    agent = load_trained(out)
    frames = np.random.default_rng(0).integers(0, 255, (3, 84, 84, 4), dtype=np.uint8)
    assert agent.policy(frames).shape == (3,)


def test_dqfd_learns_from_atari_frames(dopamine_store, tmp_path):
    out = tmp_path / "dqfd"
    train("dqfd", dopamine_store, "atari", out, Schedule(steps=120, log_every=40),
          config={**SMALL, "n_step": 3}, progress=False)
    rows = read_csv(out / "logs" / "train.csv")
    assert rows[-1]["margin_loss"] < rows[0]["margin_loss"]
    assert rows[-1]["demo_accuracy"] > rows[0]["demo_accuracy"] + 0.05


def test_the_cli_keeps_the_xla_banner_off_the_terminal(dopamine_store, tmp_path):
    """Rebuilding stacks compiles with XLA; TensorFlow's one-time banner is printed through its
    own absl C++ logging, which TF_CPP_MIN_LOG_LEVEL does not reach. A fresh process (the banner
    prints once per process) runs the CLI on the Atari frames: its stderr stays empty."""
    done = subprocess.run([sys.executable, "-m", "rlstore", "--store", str(dopamine_store.root), "train", "bc",
                           "--dataset", "atari", "--steps", "1", "--batch-size", "8", "--hidden-sizes", "8",
                           "--out", str(tmp_path / "bc")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not any(banner in done.stderr for banner in XLA_BANNER), done.stderr
    assert done.stderr == ""
