"""Which environments a run holds at once: the diagnostics' probe environments, the training
environments and the task end's evaluation environments never overlap, so a run's peak memory is
its training environments' (``docs/benchmarks.md``, "Memory per run"); and a checkpoint is
streamed to disk, not serialised in memory first."""

import subprocess
import sys
import weakref

import torch

from sphere_rl.config import build_config
from sphere_rl.continual import evaluation as evaluation_module
from sphere_rl.continual import seeding as seeding_module
from sphere_rl.continual.checkpoint import load_checkpoint
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


_SAVE_A_BIG_CHECKPOINT = """
import resource, sys
import torch
from sphere_rl.continual.checkpoint import load_checkpoint, save_checkpoint
payload = {"state": {}, "weights": torch.ones(64 * 2**20)}  # 256 MiB, every page touched
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
save_checkpoint(sys.argv[1], payload)
growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(growth / 2**10)  # MiB
"""


def test_saving_a_checkpoint_streams_it_to_disk_without_a_copy_in_memory(tmp_path):
    # A serialised copy in memory (and the bytes object made from it) made the task end's
    # checkpoint a run's memory peak: the payload counted two or three times over.
    path = tmp_path / "big.pt"
    out = subprocess.run([sys.executable, "-c", _SAVE_A_BIG_CHECKPOINT, str(path)],
                         capture_output=True, text=True, check=True)  # fmt: skip
    growth_mib = float(out.stdout.split()[-1])
    assert growth_mib < 64, f"saving a 256 MiB checkpoint raised the peak by {growth_mib:.0f} MiB"
    assert torch.equal(load_checkpoint(path)["weights"], torch.ones(64 * 2**20))
