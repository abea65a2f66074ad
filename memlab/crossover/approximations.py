"""Closed-form approximations of the excess training loss over theta_mem (x0 units).

Generalizing: sum over the within-component covariance eigenvalues lambda of lambda / (1 + psi_t lambda),
averaged over components (d s2 / (1 + psi_t s2) for the isotropic mixture). Partially memorizing:
tr(Sigma) (1 - M/N) (known to underestimate), twice that, and the instance-wise nearest-neighbour form
(1/N) sum_{i not in S} min_{j in S} |x_i - x_j|^2 on the same nested subsets as the Monte Carlo."""

from __future__ import annotations

import numpy as np


def generalizing_excess(truth, psi_T: np.ndarray) -> np.ndarray:
    lam_KxE = truth.within_eigenvalues()
    per_k = np.sum(lam_KxE[:, None, :] / (1 + psi_T[None, :, None] * lam_KxE[:, None, :]), axis=2)
    return truth.weights_K @ per_k


def within_trace(truth) -> float:
    """Expected squared distance of a sample from its component mean (d s2 for the isotropic mixture)."""
    return float(truth.weights_K @ truth.within_eigenvalues().sum(axis=1))


def nearest_neighbour_excess(train_NxD: np.ndarray, perms_PxN: np.ndarray, m_G: np.ndarray) -> np.ndarray:
    """(1/N) sum over training points outside the first M of a permutation of the squared distance to the
    nearest of the first M, for every permutation and M: P x G."""
    X = np.asarray(train_NxD, dtype=float)
    N = X.shape[0]
    sq = np.sum(X**2, axis=1)
    d2_NxN = np.maximum(sq[:, None] + sq[None, :] - 2 * X @ X.T, 0.0)
    out = np.zeros((len(perms_PxN), len(m_G)))
    for p, perm in enumerate(perms_PxN):
        running_min_NxN = np.minimum.accumulate(d2_NxN[:, perm], axis=1)  # [i, M-1] = min over first M
        rank = np.empty(N, dtype=int)
        rank[perm] = np.arange(N)
        for g, m in enumerate(m_G):
            outside = rank >= m
            out[p, g] = running_min_NxN[outside, m - 1].sum() / N
    return out
