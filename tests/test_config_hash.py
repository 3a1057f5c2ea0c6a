"""config_hash: a run's identity, independent of key order and of where the run executes."""

from sphere_rl.config import LEGACY_VALUES, RUNTIME_KEYS, build_config, config_hash, saved_config
from sphere_rl.continual.rundir import atomic_write_json, read_json
from sphere_rl.continual.runner import ContinualRunner


def test_config_hash_ignores_runtime_keys_and_key_order():
    cfg = build_config({"preset": "quick"}).to_dict()
    moved = {**cfg, "device": "cuda:0", "torch_threads": 4}
    assert set(RUNTIME_KEYS) == {"device", "torch_threads"}
    assert config_hash(moved) == config_hash(dict(reversed(list(cfg.items()))))


def test_config_hash_changes_with_any_computing_key():
    cfg = build_config({"preset": "quick"}).to_dict()
    hashes = {config_hash(cfg)} | {
        config_hash({**cfg, key: value})
        for key, value in (("seed", 1), ("rho", 0.5), ("hidden", [32]), ("tasks", ["reach-v3"]))
    }
    assert len(hashes) == 5
    assert all(len(h) == 12 and int(h, 16) >= 0 for h in hashes)


def test_a_config_saved_before_a_key_existed_reads_and_hashes_as_its_legacy_value():
    """Runs written before a key was added keep their identity and train as they did."""
    current = build_config({"preset": "quick"}).to_dict()
    legacy = {**current, **LEGACY_VALUES}
    older = {k: v for k, v in current.items() if k not in LEGACY_VALUES}
    assert saved_config(older) == legacy
    assert config_hash(older) == config_hash(legacy)
    assert config_hash(current) != config_hash(legacy)  # today's defaults are not the legacy ones
    for key, value in LEGACY_VALUES.items():  # each legacy value is still a valid setting
        assert build_config({"preset": "quick", key: value}).to_dict()[key] == value


def test_a_run_saved_before_the_new_keys_resumes_with_their_legacy_values(tmp_path):
    cfg = build_config(
        {"benchmark": None, "tasks": "reach-v3", "method": "ppo", "preset": "quick",
         "hidden": [8], "num_envs": 2, "num_steps": 25, "minibatch_size": 50, "update_epochs": 1,
         "steps_per_task": 100, "eval_interval": 10_000, "diag_interval": 10_000,
         "checkpoint_interval": 50, "eval_episodes": 1, **LEGACY_VALUES}
    )  # fmt: skip
    run_dir = tmp_path / "run"
    ContinualRunner.open(cfg, run_dir, show_progress=False).run()
    saved = read_json(run_dir / "config.json")
    atomic_write_json(
        run_dir / "config.json", {k: v for k, v in saved.items() if k not in LEGACY_VALUES}
    )
    resumed = ContinualRunner.open(None, run_dir, show_progress=False)
    assert {k: getattr(resumed.cfg, k) for k in LEGACY_VALUES} == LEGACY_VALUES
