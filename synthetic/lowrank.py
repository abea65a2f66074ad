"""Low-rank Gaussian mixture: each component a Gaussian on its own random r-dimensional subspace.

    x = mu_k + U_k z + sqrt(tau^2) e,    z ~ N(0, s2 I_r),  e ~ N(0, I_d),  k ~ Uniform(K)

mu_k uniform on the sphere of radius sqrt(d) (as in `synthetic.gmm`), U_k a d x r matrix with orthonormal
columns drawn uniformly (QR of a Gaussian matrix), s2 the variance along the subspace, tau^2 >= 0 an
isotropic noise variance. With tau^2 = 0 (the default) the data has no density in R^d, but every noised
x_t = alpha x + sigma eps (sigma > 0) does, so the posterior mean theta_star is defined at every t > 0.
Component covariance: s2 U_k U_k^T + tau^2 I (eigenvalues s2 + tau^2, r times, and tau^2, d - r times).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthetic.base import Dataset, DataError, require_positive, require_positive_int


@dataclass(frozen=True)
class LowRankGMMTruth:
    means_KxD: np.ndarray
    bases_KxDxR: np.ndarray  # orthonormal columns: bases[k].T @ bases[k] = I_r
    variance: float  # s2, along every subspace direction
    noise: float  # tau^2, isotropic, >= 0
    weights_K: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.means_KxD.shape[1])

    @property
    def rank(self) -> int:
        return int(self.bases_KxDxR.shape[2])

    def covariances_KxDxD(self) -> np.ndarray:
        """Dense component covariances (for tests and small d)."""
        U = self.bases_KxDxR
        return self.variance * np.einsum("kdr,ker->kde", U, U) + self.noise * np.eye(self.dim)[None]

    def within_eigenvalues(self) -> np.ndarray:
        """Eigenvalues of each component's covariance: K x d (r of s2 + tau^2, d - r of tau^2)."""
        lam = np.full(self.dim, self.noise)
        lam[: self.rank] += self.variance
        return np.repeat(lam[None], len(self.weights_K), axis=0)


def make_lowrank_gmm(dim: int = 30, components: int = 4, rank: int = 3, n_train: int = 100, n_test: int = 1000,
                     variance: float = 1.0, noise: float = 0.0, seed: int = 0) -> Dataset:
    """Draw N training and T test samples of the low-rank mixture (model in the module docstring)."""
    d = require_positive_int("dim", dim)
    k = require_positive_int("components", components)
    r = require_positive_int("rank", rank)
    n = require_positive_int("n_train", n_train)
    t = require_positive_int("n_test", n_test)
    s2 = require_positive("variance", variance)
    try:
        tau2 = float(noise)
    except (TypeError, ValueError):
        raise DataError(f"noise must be a number >= 0, got {noise!r}") from None
    if not np.isfinite(tau2) or tau2 < 0:
        raise DataError(f"noise must be a number >= 0, got {noise!r}")
    if r > d:
        raise DataError(f"rank must be <= dim ({d}), got {r}")
    if k > n:
        raise DataError(f"components must be <= n_train ({n}), got {k}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x10F]))
    raw = rng.standard_normal((k, d))
    means = np.sqrt(d) * raw / np.linalg.norm(raw, axis=1, keepdims=True)
    q, rr = np.linalg.qr(rng.standard_normal((k, d, r)))
    bases = q * np.sign(np.einsum("kii->ki", rr))[:, None, :]  # sign fix: Haar-uniform orthonormal frames
    truth = LowRankGMMTruth(means, bases, s2, tau2, np.full(k, 1.0 / k))
    train, ytr = sample_lowrank_gmm(truth, n, rng)
    test, yte = sample_lowrank_gmm(truth, t, rng)
    return Dataset("lowrank-gmm", train, test, ytr, yte, truth, (d,))


def sample_lowrank_gmm(truth: LowRankGMMTruth, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.choice(len(truth.weights_K), size=n, p=truth.weights_K)
    z_NxR = rng.standard_normal((n, truth.rank)) * np.sqrt(truth.variance)
    x = truth.means_KxD[labels] + np.einsum("ndr,nr->nd", truth.bases_KxDxR[labels], z_NxR)
    if truth.noise > 0:
        x = x + rng.standard_normal((n, truth.dim)) * np.sqrt(truth.noise)
    return x, labels
