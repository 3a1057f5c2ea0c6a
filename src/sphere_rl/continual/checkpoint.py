"""Atomic checkpoints holding everything needed to continue a run exactly."""

from __future__ import annotations

import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sphere_rl.continual.rundir import RunFileError, atomic_write


def capture_rng_state() -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        # Global NumPy state: third-party simulators may draw from it.
        "numpy": np.random.get_state(),  # noqa: NPY002
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Serialise ``payload`` with ``torch.save`` straight into an atomic write (a checkpoint is
    tens of MB: serialising it into memory first made the task end a run's memory peak)."""
    atomic_write(Path(path), lambda f: torch.save(payload, f))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The payload saved in ``path``.

    Raises:
        FileNotFoundError: if there is no such file.
        RunFileError: naming the file, if it is truncated or not a checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        # Our own files: they hold numpy RNG states and plain Python objects besides tensors.
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, zipfile.BadZipFile) as err:
        first_line = (str(err).splitlines() or [""])[0]
        raise RunFileError(
            f"{path} is damaged (truncated or not a checkpoint): {type(err).__name__}: {first_line}"
        ) from None
    if not isinstance(payload, dict) or "state" not in payload:
        raise RunFileError(f"{path} is not a sphere-rl checkpoint")
    return payload
