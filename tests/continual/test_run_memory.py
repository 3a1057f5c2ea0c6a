"""Which environments a run holds at once: the diagnostics' probe environments, the training
environments and the task end's evaluation environments never overlap, so a run's peak memory is
its training environments' (``docs/benchmarks.md``, "Memory per run")."""

import weakref

from sphere_rl.config import build_config
from sphere_rl.continual import evaluation as evaluation_module
from sphere_rl.continual import seeding as seeding_module
from sphere_rl.continual.rundir import read_jsonl
from sphere_rl.continual.runner import ContinualRunner
from sphere_rl.envs import make_vector_env

PROBE_ENVS, TRAIN_ENVS, EVAL_ENVS = 8, 2, 1  # told apart by their sizes


def _log_builds(monkeypatch) -> list[tuple[str, list[str]]]:
    """Each environment set built, in order, with the sets still alive at that moment."""
    alive: list[tuple[str, weakref.ref]] = []
    log: list[tuple[str, list[str]]] = []
    kinds = {PROBE_ENVS: "probe", TRAIN_ENVS: "train", EVAL_ENVS: "eval"}

    def logged(*args, **kwargs):
        env = make_vector_env(*args, **kwargs)
        kind = kinds[env.num_envs]
        log.append((kind, [k for k, ref in alive if ref() is not None]))
        alive.append((kind, weakref.ref(env)))
        return env

    monkeypatch.setattr(seeding_module, "make_vector_env", logged)  # training envs
    monkeypatch.setattr(evaluation_module, "make_vector_env", logged)
    return log


def test_no_two_environment_sets_are_alive_at_once(tmp_path, tiny_overrides, monkeypatch):
    overrides = {**tiny_overrides, "tasks": "reach-v3", "num_envs": TRAIN_ENVS,
                 "diag_samples": PROBE_ENVS, "eval_episodes": EVAL_ENVS, "steps_per_task": 100,
                 "eval_interval": 10**9, "diag_interval": 10**9}  # fmt: skip
    log = _log_builds(monkeypatch)
    ContinualRunner.open(build_config(overrides), tmp_path / "run", show_progress=False).run()
    # The probe batch is drawn before the training environments exist; they are gone before the
    # task end evaluates, and the diagnostics reuse the probe batch drawn at the start.
    assert log == [("probe", []), ("train", []), ("eval", [])]
    kinds = [r["kind"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl")]
    assert kinds.count("diag") == 1 and kinds.count("eval") == 1
