"""config_hash: a run's identity, independent of key order and of where the run executes."""

from sphere_rl.config import RUNTIME_KEYS, build_config, config_hash


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
