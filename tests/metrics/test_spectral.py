"""Effective rank and srank on matrices with known answers."""

import math

import pytest
import torch

from sphere_rl.metrics import effective_rank, srank


def orthogonal(n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    return q


def psd_with_spectrum(eigenvalues, seed: int = 0) -> torch.Tensor:
    eigenvalues = torch.as_tensor(eigenvalues, dtype=torch.float64)
    q = orthogonal(len(eigenvalues), seed)
    return q @ torch.diag(eigenvalues) @ q.T


@pytest.mark.parametrize("n", [1, 2, 7, 50])
def test_identity_has_full_effective_rank(n):
    assert effective_rank(torch.eye(n)) == pytest.approx(n, rel=1e-12)


def test_rank_one_and_two_equal_eigenvalues():
    v = torch.randn(9, 1, dtype=torch.float64)
    assert effective_rank(v @ v.T) == pytest.approx(1.0, abs=1e-9)
    assert effective_rank(psd_with_spectrum([3.0, 3.0, 0, 0, 0])) == pytest.approx(2.0, rel=1e-9)


def test_closed_form_entropy():
    lam = torch.tensor([4.0, 2.0, 1.0, 1.0], dtype=torch.float64)
    p = lam / lam.sum()
    expected = math.exp(float(-(p * p.log()).sum()))
    assert effective_rank(psd_with_spectrum(lam, seed=1)) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("scale", [1e-30, 1e-6, 1.0, 1e8, 1e30])
def test_scale_invariance(scale):
    m = psd_with_spectrum([5.0, 1.0, 0.5, 0.1], seed=2)
    assert effective_rank(scale * m) == pytest.approx(effective_rank(m), rel=1e-9)


def test_zero_and_empty_inputs():
    assert effective_rank(torch.zeros(4, 4)) == 0.0
    assert effective_rank(torch.zeros(3, 6), features=True) == 0.0
    assert effective_rank(torch.zeros(0, 0)) == 0.0
    assert srank(torch.zeros(5, 3)) == 0


def test_rounding_noise_of_rank_deficient_matrix_is_ignored():
    """A rank-3 float32 Gram has tiny non-zero eigenvalues from rounding; they count as zero."""
    x = torch.randn(40, 3)
    gram = x @ x.T
    lam = torch.linalg.eigvalsh(gram.double())
    assert (lam.abs() > 0).sum() > 3  # the noise is really there
    exact = effective_rank(x.double(), features=True)
    assert effective_rank(gram) == pytest.approx(exact, rel=1e-5)
    assert effective_rank(gram) <= 3.0


@pytest.mark.parametrize("shape", [(30, 8), (8, 30), (12, 12)])
def test_feature_mode_equals_gram_mode(shape):
    x = torch.randn(*shape, dtype=torch.float64) * torch.linspace(0.1, 2.0, shape[1])
    assert effective_rank(x, features=True) == pytest.approx(effective_rank(x @ x.T), rel=1e-10)
    assert effective_rank(x, features=True) == pytest.approx(effective_rank(x.T @ x), rel=1e-10)
    sigma_sq = torch.linalg.svdvals(x) ** 2
    p = sigma_sq / sigma_sq.sum()
    expected = math.exp(float(-(p * p.log()).sum()))
    assert effective_rank(x, features=True) == pytest.approx(expected, rel=1e-10)


def test_input_validation():
    with pytest.raises(ValueError):
        effective_rank(torch.ones(3, 4))
    with pytest.raises(ValueError):
        effective_rank(torch.ones(3))
    with pytest.raises(ValueError):
        srank(torch.ones(3, 3), delta=1.0)


def test_srank_known_answers():
    q = orthogonal(20, seed=3)[:, :6]  # orthonormal columns: singular values = the diagonal
    diag = torch.tensor([10.0, 5.0, 3.0, 1.0, 0.5, 0.5], dtype=torch.float64)
    features = q * diag  # singular values 10, 5, 3, 1, 0.5, 0.5 (sum 20)
    # Cumulative mass: 50%, 75%, 90%, 95%, 97.5%, 100%.
    expected = {0.0: 6, 0.01: 6, 0.03: 5, 0.05: 4, 0.08: 4, 0.2: 3, 0.3: 2, 0.6: 1}
    for delta, k in expected.items():
        assert srank(features, delta=delta) == k, delta
    assert srank(torch.eye(5, dtype=torch.float64), delta=0.0) == 5
    assert srank(torch.eye(5, dtype=torch.float64), delta=0.2) == 4
