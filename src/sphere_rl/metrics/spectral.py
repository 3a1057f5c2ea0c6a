"""Spectra of kernels and feature matrices: effective rank and srank.

Conventions shared by every function here:

* A **Gram / kernel** input is a symmetric positive semi-definite ``(n, n)`` matrix ``M``; its
  spectrum is its eigenvalues ``λ``.
* A **feature** input is an ``(N, D)`` matrix ``X`` (rows are samples); its spectrum is the squared
  singular values ``σ²``, i.e. the eigenvalues of ``XᵀX`` (equivalently ``XXᵀ``). So
  ``effective_rank(X, features=True) == effective_rank(X @ X.T)``.
* Eigenvalues are computed in float64 by default, whatever the input dtype
  (``torch.linalg.eigvalsh`` on the symmetrised matrix). For features the smaller of ``XXᵀ`` and
  ``XᵀX`` is formed in the input dtype, then diagonalised like a Gram input.
* Eigenvalues ``λ ≤ rtol · λ_max`` count as zero (this removes the rounding noise of a
  rank-deficient matrix, which would otherwise add spurious tiny directions). The default ``rtol``
  is ``n · eps``, with ``n`` the size of the matrix diagonalised (``min(N, D)`` for features) and
  ``eps`` the machine epsilon of the coarser of the input dtype and the eigensolve dtype (the
  ``matrix_rank`` convention). An all-zero input has no positive eigenvalue: rank 0.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _default_rtol(x: Tensor, features: bool, eig_dtype: torch.dtype) -> float:
    # The coarser of the input's and the eigensolve's precision sets the noise floor, scaled by the
    # size of the matrix actually diagonalised (for features, their smaller Gram).
    eps = max(torch.finfo(eig_dtype).eps, torch.finfo(x.dtype).eps if x.is_floating_point() else 0)
    return (min(x.shape) if features else x.shape[-1]) * eps


def spectrum(
    x: Tensor, *, features: bool = False, eig_dtype: torch.dtype = torch.float64
) -> Tensor:
    """Eigenvalues of a PSD matrix, or squared singular values of a feature matrix.

    Args:
        x: ``(n, n)`` symmetric PSD matrix, or ``(N, D)`` features when ``features=True``.
        features: interpret ``x`` as a feature matrix (spectrum ``σ²``).
        eig_dtype: dtype of the eigensolve (float64 by default; float32 is faster for large
            kernels, at an absolute eigenvalue error of about ``1e-7 · λ_max``).

    Returns:
        ``(min(N, D),)`` or ``(n,)`` eigenvalues in descending order, in ``eig_dtype``; tiny
        negative values from rounding are kept (callers threshold them).
    """
    if x.dim() != 2:
        raise ValueError(f"expected a 2-D matrix, got shape {tuple(x.shape)}")
    x = x.detach()
    if not x.is_floating_point():
        x = x.to(torch.float64)
    if features:
        # The smaller Gram has the same non-zero spectrum and is cheaper to diagonalise. It is
        # formed in the input dtype (the product is the expensive part), so features and their
        # Gram give the same answer: effective_rank(X, features=True) == effective_rank(X @ X.T).
        gram = x @ x.T if x.shape[0] <= x.shape[1] else x.T @ x
    else:
        if x.shape[0] != x.shape[1]:
            raise ValueError(f"a Gram matrix must be square, got shape {tuple(x.shape)}")
        gram = x
    gram = gram.to(eig_dtype)
    gram = 0.5 * (gram + gram.T)  # eigvalsh reads one triangle; symmetrise so both count
    if gram.numel() == 0:
        return gram.new_zeros(0)
    return torch.linalg.eigvalsh(gram).flip(0)


def effective_rank_from_spectrum(eigenvalues: Tensor, rtol: float) -> float:
    """``exp(entropy)`` of the normalised positive spectrum.

    Args:
        eigenvalues: ``(n,)`` non-negative spectrum (any order; rounding negatives allowed).
        rtol: values ``≤ rtol · max`` are treated as zero.

    Returns:
        ``r_e = exp(-Σ p_i log p_i)`` with ``p = λ / Σλ`` over the kept values; 0 if none is kept.
    """
    if eigenvalues.numel() == 0:
        return 0.0
    lam_max = eigenvalues.max()
    if not lam_max > 0:
        return 0.0
    kept = eigenvalues[eigenvalues > rtol * lam_max]
    p = kept / kept.sum()  # normalising first makes the result scale-invariant and overflow-free
    return float(torch.exp(-(p * p.log()).sum()))


def effective_rank(
    x: Tensor,
    *,
    features: bool = False,
    rtol: float | None = None,
    eig_dtype: torch.dtype = torch.float64,
) -> float:
    """Effective rank ``r_e = exp(-Σ p_i log p_i)``, ``p = λ / Σ λ`` over positive eigenvalues.

    ``r_e`` lies in ``[1, rank]``: it is ``k`` when the spectrum has ``k`` equal non-zero values and
    falls towards 1 as one direction dominates. It is invariant to scaling ``x``.

    Args:
        x: ``(n, n)`` symmetric PSD matrix (a kernel or Gram), or ``(N, D)`` features if
            ``features=True`` (then the spectrum is ``σ²``, so the result equals
            ``effective_rank(x @ x.T)``).
        features: see ``x``.
        rtol: relative tolerance below which eigenvalues count as zero (see the module docstring
            for the default).
        eig_dtype: dtype of the eigensolve (float64 by default).

    Returns:
        The effective rank as a Python float; 0.0 for an all-zero (or empty) input.
    """
    rtol = _default_rtol(x, features, eig_dtype) if rtol is None else rtol
    return effective_rank_from_spectrum(spectrum(x, features=features, eig_dtype=eig_dtype), rtol)


def srank(features: Tensor, delta: float = 0.01) -> int:
    """Feature rank of Kumar et al. (2021), "Implicit Under-Parameterization".

    Args:
        features: ``(N, D)`` feature matrix (rows are samples).
        delta: fraction of the singular-value mass allowed outside the top ``k``.

    Returns:
        The smallest ``k`` such that the ``k`` largest singular values hold at least ``1 - delta``
        of their sum (singular values, not their squares, as in the paper). 0 for an all-zero input.
    """
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"delta must be in [0, 1), got {delta!r}")
    if features.dim() != 2:
        raise ValueError(f"expected (N, D) features, got shape {tuple(features.shape)}")
    sigma = torch.linalg.svdvals(features.detach().to(torch.float64))
    total = sigma.sum()
    if not total > 0:
        return 0
    cumulative = sigma.cumsum(0) / total
    # A tiny slack keeps exact ties (e.g. k equal values and delta=0) from failing on rounding.
    return int((cumulative < (1.0 - delta) - 1e-12).sum()) + 1
