"""The main job end to end on a tiny budget: logs → Beam ingest → BC → evaluation → report."""
from __future__ import annotations

import json

from rlstore.demo import run_main_job


def test_main_job_writes_a_report_with_a_learning_curve(tmp_path, capsys):
    out = tmp_path / "demo"
    summary = run_main_job(out, env_spec="catch", episodes=20, steps=200, eval_episodes=20,
                           beam_args=["--direct_num_workers=1", "--direct_running_mode=in_memory"])
    printed = capsys.readouterr().out
    assert [f"[{stage}]" in printed for stage in range(1, 6)] == [True] * 5
    assert summary["dataset"] == "catch_expert@1" and summary["updates"] == 200
    assert json.loads((out / "summary.json").read_text()) == summary
    evaluation = summary["evaluation"]
    assert evaluation["bc"]["return_mean"] > evaluation["random"]["return_mean"]
    report = (out / "report.md").read_text()
    assert "| bc | `catch` | 20 |" in report and "![learning curve](learning_curve.png)" in report
    assert "catch_expert@1" in report
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "policy" / "saved_model.pb").is_file()
    run = json.loads((out / "runs" / "bc-catch_expert-v1" / "run.json").read_text())
    assert run["dataset"]["ref"] == "catch_expert@1" and run["sessions"][-1]["end_step"] == 200
