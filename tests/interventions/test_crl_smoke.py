"""Short continual-RL runs on the first two tasks of both benchmarks (real physics).

The default run covers every plug-in in three runs per benchmark: the penalties on a Top-K MoE
actor, the network edits on a Top-K MoE actor with LayerNorm, and everything together on a dense
actor. The ``slow`` matrix runs every method row on its own, on its default and on an MoE actor.
"""

import pytest

from sphere_rl.config import build_config
from sphere_rl.continual.rundir import read_jsonl
from sphere_rl.continual.runner import ContinualRunner

TASK_PAIRS = {"metaworld": "reach-v3,window-close-v3", "h1": "h1-stand,h1-walk"}
TINY = {
    "benchmark": None,
    "preset": "quick",
    "hidden": [16],
    "n_experts": 3,
    "num_envs": 2,
    "num_steps": 50,
    "minibatch_size": 50,
    "update_epochs": 2,
    "steps_per_task": 100,
    "checkpoint_interval": 100,
    "eval_interval": 100_000,
    "eval_episodes": 1,
    "diag_interval": 100_000,
    "diag_samples": 8,
    "diag_entk": False,
    # Small thresholds so that the network edits happen within 8 updates.
    "cbp_maturity": 1,
    "cbp_replacement_rate": 0.1,
    "redo_period": 2,
    "redo_tau": 0.5,
}
PENALTIES, EDITS = "parseval+cchain+l2_init", "cbp+redo+snp"


def run_crl(tmp_path, benchmark: str, **overrides) -> ContinualRunner:
    cfg = build_config({**TINY, "tasks": TASK_PAIRS[benchmark], **overrides})
    runner = ContinualRunner.open(cfg, tmp_path / "run", show_progress=False)
    status = runner.run()
    assert status["state"] == "finished" and status["global_step"] == 200
    return runner


def train_records(runner: ContinualRunner) -> list[dict]:
    return [r for r in read_jsonl(runner.run_dir / "metrics.jsonl") if r["kind"] == "train"]


def edit_counts(runner: ContinualRunner) -> dict[str, int]:
    """Units replaced by CBP, recycled by ReDo, shrink-and-perturb steps."""
    counts = {"cbp": "replaced", "redo": "recycled", "snp": "updates"}
    return {cb.name: getattr(cb, counts[cb.name]) for cb in runner.agent.callbacks
            if cb.name in counts}  # fmt: skip


@pytest.mark.parametrize("benchmark", TASK_PAIRS)
@pytest.mark.parametrize(
    ("arch", "reg"),
    [("topk_moe", PENALTIES), ("topk_moe_ln", EDITS), ("mlp", f"{PENALTIES}+{EDITS}")],
    ids=["penalties-moe", "edits-moe-ln", "all-dense"],
)
def test_crl_two_tasks(tmp_path, benchmark, arch, reg):
    runner = run_crl(tmp_path, benchmark, method="ppo", arch=arch, reg=reg)
    records = train_records(runner)
    assert [r["task_index"] for r in records] == [0, 1]
    for name in reg.split("+"):
        if name in ("parseval", "cchain", "l2_init"):
            assert all(f"reg/{name}" in r for r in records)
    edits = edit_counts(runner)
    assert set(edits) == set(reg.split("+")) & {"cbp", "redo", "snp"}
    assert all(count > 0 for count in edits.values())


BASELINES = ("topk_moe_ln", "pw", "cbp", "cchain", "redo", "snp", "l2_init")


@pytest.mark.slow
@pytest.mark.parametrize("benchmark", TASK_PAIRS)
@pytest.mark.parametrize("arch", [None, "topk_moe"])
@pytest.mark.parametrize("method", BASELINES)
def test_crl_every_method(tmp_path, benchmark, arch, method):
    run_crl(tmp_path, benchmark, method=method, **({"arch": arch} if arch else {}))
