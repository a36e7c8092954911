"""The main job end to end on a tiny budget: logs → Beam ingest → BC → evaluation → DQfD online → report."""
from __future__ import annotations

import json

from rlstore.demo import run_main_job
from rlstore.store import Store


def test_main_job_writes_a_report_with_both_learning_curves_and_the_new_versions(tmp_path, capsys):
    out = tmp_path / "demo"
    summary = run_main_job(out, env_spec="catch", episodes=20, steps=200, eval_episodes=20, online_steps=600,
                           beam_args=["--direct_num_workers=1", "--direct_running_mode=in_memory"])
    printed = capsys.readouterr().out
    assert [f"[{stage}]" in printed for stage in range(1, 7)] == [True] * 6
    assert summary["dataset"] == "catch_expert@1" and summary["updates"] == 200
    assert json.loads((out / "summary.json").read_text()) == summary
    evaluation = summary["evaluation"]
    assert evaluation["bc"]["return_mean"] > evaluation["random"]["return_mean"]
    assert evaluation["dqfd"]["return_mean"] > evaluation["random"]["return_mean"]
    online = summary["online"]
    versions = online["write_back"]["versions"]
    assert online["env_steps"] >= 600 and versions and Store(out / "store").versions("catch_expert_dqfd") == versions
    report = (out / "report.md").read_text()
    assert "| bc | `catch` | 20 |" in report and "| dqfd | `catch` | 20 |" in report
    assert "![learning curve](learning_curve.png)" in report
    assert "catch_expert@1" in report and f"catch_expert_dqfd@{versions[-1]}" in report
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "policy" / "saved_model.pb").is_file()
    run = json.loads((out / "runs" / "bc-catch_expert-v1" / "run.json").read_text())
    assert run["dataset"]["ref"] == "catch_expert@1" and run["sessions"][-1]["end_step"] == 200
