"""Fixtures: synthetic run directories (see synthetic_runs.py)."""

import numpy as np
import pytest
from synthetic_runs import CRL_CURVES, CRL_MATRIX, RL_CURVES, RL_MATRIX, write_run


@pytest.fixture
def crl_and_rl(tmp_path):
    """Finished CRL and RL runs of one method and seed."""
    ranks = [20, 18, 16, 15, 14, 12, 13, 11, 10, 9, 7, 8]  # one per diagnostic (4 per task)
    crl = write_run(tmp_path, protocol="crl", matrix=CRL_MATRIX, curves=CRL_CURVES, ranks=ranks)
    rl = write_run(tmp_path, protocol="rl", matrix=RL_MATRIX, curves=RL_CURVES, ranks=ranks)
    return tmp_path, crl, rl


@pytest.fixture
def mixed_runs(tmp_path):
    """Two methods × two seeds × both protocols (MoE loads for sphere), plus one partial run."""
    root = tmp_path / "runs"
    rng = np.random.default_rng(0)
    for method in ("ppo", "sphere"):
        for seed in (0, 1):
            for protocol, matrix, curves in (("crl", CRL_MATRIX, CRL_CURVES),
                                             ("rl", RL_MATRIX, RL_CURVES)):  # fmt: skip
                noisy = np.clip(matrix + rng.normal(0, 0.05, matrix.shape), 0, 1)
                ranks = list(30 - np.arange(12) * (2.0 if method == "ppo" else 0.5))
                loads = rng.dirichlet(np.ones(4), size=12) if method == "sphere" else ()
                write_run(root, method=method, protocol=protocol, seed=seed, matrix=noisy,
                          curves=curves, ranks=ranks, loads=loads)  # fmt: skip
    write_run(root, method="sphere", seed=2, matrix=CRL_MATRIX, curves=CRL_CURVES,
              state="failed", tasks_done=1)  # fmt: skip
    return root
