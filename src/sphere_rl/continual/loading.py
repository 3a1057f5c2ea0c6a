"""Rebuild a trained agent from a run directory's checkpoint (for eval and analysis)."""

from __future__ import annotations

from pathlib import Path

from sphere_rl.algo.ppo import PPOAgent
from sphere_rl.config import ExperimentConfig, build_config, saved_config
from sphere_rl.continual.checkpoint import load_checkpoint
from sphere_rl.methods import build_agent


def resolve_checkpoint(run_dir: Path, checkpoint: str = "latest") -> Path:
    """``latest`` or a file name under ``run_dir/checkpoints`` (or a path to a ``.pt`` file)."""
    path = Path(checkpoint)
    if path.suffix == ".pt" and path.is_file():
        return path
    name = checkpoint if checkpoint.endswith(".pt") else f"{checkpoint}.pt"
    path = Path(run_dir) / "checkpoints" / name
    if not path.is_file():
        available = sorted(p.stem for p in (Path(run_dir) / "checkpoints").glob("*.pt"))
        raise FileNotFoundError(f"no checkpoint {name!r} in {run_dir}; available: {available}")
    return path


def load_agent(
    run_dir: Path, checkpoint: str = "latest"
) -> tuple[PPOAgent, list[str], ExperimentConfig]:
    """``(agent, tasks, config)`` restored from a checkpoint; the actor is in eval mode."""
    payload = load_checkpoint(resolve_checkpoint(run_dir, checkpoint))
    if payload["agent"] is None:
        raise ValueError(f"{checkpoint} in {run_dir} was written before any agent existed")
    cfg = build_config(saved_config(payload["config"]))
    agent = build_agent(cfg, payload["obs_dim"], payload["act_dim"])
    agent.load_state_dict(payload["agent"])
    agent.actor.eval()
    return agent, payload["tasks"], cfg
