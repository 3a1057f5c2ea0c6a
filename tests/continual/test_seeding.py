"""The one env/seed recipe (``continual/seeding.py``): its seeds are the documented
``SeedSequence`` formulas, its environments are the ones those seeds give, and ``sphere entk``
probes the very states the runner's diagnostics used."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import sphere_rl.metrics
from sphere_rl.analysis.entk_results import read_entk_records
from sphere_rl.config import build_config
from sphere_rl.continual.evaluation import probe_states
from sphere_rl.continual.rundir import read_jsonl
from sphere_rl.continual.runner import ContinualRunner
from sphere_rl.continual.seeding import (
    agent_seed,
    env_options,
    eval_seed,
    probe_batch,
    probe_seed,
    training_env_seed,
    training_envs,
)
from sphere_rl.envs import make_vector_env


def _oracle(*entropy: int) -> int:
    """The seed formula written out: one SeedSequence word, reduced to 31 bits."""
    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0] % (2**31 - 1))


@pytest.mark.parametrize("protocol", ["crl", "rl"])
def test_seeds_are_the_stream_formulas(protocol, tiny_overrides):
    cfg = build_config({**tiny_overrides, "seed": 7, "protocol": protocol})
    # Streams: agent 1, training envs 2, evaluation 3, probes 4.
    assert agent_seed(cfg, 3) == _oracle(7, 1, 3 if protocol == "rl" else 0)
    assert training_env_seed(cfg, 2) == _oracle(7, 2, 2)
    assert training_env_seed(cfg, 2, 5) == _oracle(7, 2, 2, 5)
    assert eval_seed(cfg, 1) == _oracle(7, 3, 1)
    assert eval_seed(cfg, 1, 4) == _oracle(7, 3, 1, 4)
    assert probe_seed(cfg, 1) == _oracle(7, 4, 1)
    seeds = {agent_seed(cfg, 1), training_env_seed(cfg, 1), eval_seed(cfg, 1), probe_seed(cfg, 1)}
    assert len(seeds) == 4 and all(0 <= s < 2**31 - 1 for s in seeds)


def test_environments_are_built_from_those_seeds(tiny_overrides):
    cfg = build_config({**tiny_overrides, "seed": 7})
    backend = {"vectorization": cfg.vectorization, "backend": cfg.env_backend}
    seed = _oracle(7, 2, 1)
    with training_envs(cfg, 1, "reach-v3") as envs:
        with make_vector_env("reach-v3", cfg.num_envs, seed=seed, **backend) as expected:
            np.testing.assert_array_equal(envs.reset(), expected.reset())
    probes = probe_states("reach-v3", 8, _oracle(7, 4, 1), env_backend=cfg.env_backend)
    np.testing.assert_array_equal(probe_batch(cfg, 1, "reach-v3", 8), probes)


def test_environment_options_come_from_the_config(tiny_overrides):
    cfg = build_config({**tiny_overrides, "h1_feet": "menagerie"})
    assert env_options(cfg, "h1-walk") == {"feet": "menagerie"}
    assert env_options(cfg, "reach-v3") == {}


def test_entk_probes_the_runners_probe_batches(tmp_path, tiny_overrides, monkeypatch):
    from sphere_rl.cli.app import _register_all, app

    cfg = build_config({**tiny_overrides, "protocol": "crl"})
    runner = ContinualRunner.open(cfg, tmp_path / "run", show_progress=False)
    runner.run()
    probed = []
    real_rank = sphere_rl.metrics.entk_effective_rank

    def recorded(actor, obs, **kwargs):
        probed.append(obs.clone())
        return real_rank(actor, obs, **kwargs)

    monkeypatch.setattr(sphere_rl.metrics, "entk_effective_rank", recorded)
    _register_all()
    args = ["entk", str(tmp_path / "run"), "--checkpoint", "task_001_end", "--samples", "8"]
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    # The last checkpoint holds the runner's final agent (and its observation statistics).
    assert len(probed) == len(runner.tasks) == 2
    for j, obs in enumerate(probed):
        assert torch.equal(obs, runner.agent.obs_tensor(runner._probes[j]))
    # So its r_e(K) on the last task's probe is the one the run logged at that task's end.
    last = [r for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "diag"][-1]
    (cell,) = [r for r in read_entk_records(tmp_path / "run") if r["probe_task_index"] == 1]
    assert last["task_index"] == 1
    assert cell["entk_rank"] == pytest.approx(last["entk/effective_rank"], rel=1e-6)
