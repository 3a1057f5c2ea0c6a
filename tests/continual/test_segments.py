"""run.json records one provenance segment per training session (creation, each resume), and
closes it with the outcome however the session ends."""

import json

import pytest

from sphere_rl import provenance
from sphere_rl.config import build_config, config_hash
from sphere_rl.continual.runner import ContinualRunner

ONE_ITERATION = {
    "benchmark": None,
    "tasks": "reach-v3",
    "method": "ppo",
    "preset": "quick",
    "hidden": [16],
    "num_envs": 2,
    "num_steps": 50,
    "minibatch_size": 50,
    "update_epochs": 1,
    "steps_per_task": 100,
    "checkpoint_interval": 100,
    "eval_interval": 10_000,
    "eval_episodes": 1,
    "diag_interval": 10_000,
    "diag_samples": 8,
    "diag_entk": False,
}


def _run_json(run_dir) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def test_a_resume_on_another_commit_adds_a_segment(tmp_path, monkeypatch):
    cfg = build_config(ONE_ITERATION)
    run_dir = tmp_path / "run"
    ContinualRunner.open(cfg, run_dir, show_progress=False)  # killed before training
    first = _run_json(run_dir)
    assert first["config_hash"] == config_hash(cfg.to_dict())
    assert [s["start_step"] for s in first["segments"]] == [0]
    assert first["segments"][0]["end"] is None  # never closed: the session died

    real = provenance.collect_provenance

    def on_another_commit(argv=None, device="cpu"):
        return {
            **real(argv, device),
            "git": {"commit": "f" * 40, "dirty": True, "diff_sha256": "e" * 64},
        }

    monkeypatch.setattr(provenance, "collect_provenance", on_another_commit)
    runner = ContinualRunner.open(cfg, run_dir, show_progress=False)
    status = runner.run()
    segments = _run_json(run_dir)["segments"]
    assert len(segments) == 2
    assert segments[0] == first["segments"][0]  # the earlier session's record is kept as is
    assert segments[1]["git"]["commit"] == "f" * 40 and segments[1]["git"]["dirty"] is True
    assert segments[1]["outcome"] == "finished"
    assert segments[1]["end_step"] == status["global_step"] == 100
    assert segments[1]["end"] >= segments[1]["start"]
    assert segments[1]["torch_threads"] == cfg.torch_threads
    # A finished run opened again trains nothing and adds no segment.
    ContinualRunner.open(cfg, run_dir, show_progress=False).run()
    assert len(_run_json(run_dir)["segments"]) == 2


@pytest.mark.parametrize(
    ("error", "outcome"), [(RuntimeError("bug"), "failed"), (KeyboardInterrupt(), "interrupted")]
)
def test_a_session_that_ends_early_records_its_outcome(tmp_path, monkeypatch, error, outcome):
    runner = ContinualRunner.open(build_config(ONE_ITERATION), tmp_path / "run", False)

    def crash(t):
        raise error

    monkeypatch.setattr(runner, "_run_task", crash)
    with pytest.raises(type(error)):
        runner.run()
    segment = _run_json(tmp_path / "run")["segments"][-1]
    assert segment["outcome"] == outcome and segment["end_step"] == 0
    assert segment["end"] is not None


def test_an_older_run_json_without_segments_resumes_and_gains_one(tmp_path):
    cfg = build_config(ONE_ITERATION)
    run_dir = tmp_path / "run"
    ContinualRunner.open(cfg, run_dir, show_progress=False)
    old = {k: v for k, v in _run_json(run_dir).items() if k not in ("segments", "config_hash")}
    (run_dir / "run.json").write_text(json.dumps(old))
    ContinualRunner.open(cfg, run_dir, show_progress=False)
    info = _run_json(run_dir)
    assert len(info["segments"]) == 1 and info["config_hash"] == config_hash(cfg.to_dict())
