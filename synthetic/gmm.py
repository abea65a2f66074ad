"""Isotropic homoscedastic Gaussian mixture: means uniform on the sphere of radius sqrt(d)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthetic.base import Dataset, DataError, require_positive, require_positive_int


@dataclass(frozen=True)
class GMMTruth:
    means_KxD: np.ndarray
    variance: float  # s2, shared by every component and coordinate
    weights_K: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.means_KxD.shape[1])

    def within_eigenvalues(self) -> np.ndarray:
        """Eigenvalues of one component's covariance, per component: K x d (all equal to s2)."""
        return np.full(self.means_KxD.shape, self.variance)


def make_gmm(dim: int = 30, components: int = 4, n_train: int = 100, n_test: int = 1000,
             variance: float = 1.0, seed: int = 0) -> Dataset:
    """Draw N training and T test samples from a K-component isotropic mixture in dimension d."""
    d = require_positive_int("dim", dim)
    k = require_positive_int("components", components)
    n = require_positive_int("n_train", n_train)
    t = require_positive_int("n_test", n_test)
    s2 = require_positive("variance", variance)
    if k > n:
        raise DataError(f"components must be <= n_train ({n}), got {k}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x6A]))
    raw = rng.standard_normal((k, d))
    means = np.sqrt(d) * raw / np.linalg.norm(raw, axis=1, keepdims=True)
    weights = np.full(k, 1.0 / k)
    truth = GMMTruth(means, s2, weights)
    train, ytr = sample_gmm(truth, n, rng)
    test, yte = sample_gmm(truth, t, rng)
    return Dataset("gmm", train, test, ytr, yte, truth, (d,))


def sample_gmm(truth: GMMTruth, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.choice(len(truth.weights_K), size=n, p=truth.weights_K)
    noise = rng.standard_normal((n, truth.dim)) * np.sqrt(truth.variance)
    return truth.means_KxD[labels] + noise, labels
