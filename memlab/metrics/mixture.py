"""Where the learned components of a mixture estimator sit: near a true mean, near a training point, or
neither; and the learned (shared) variance.

A learned mean is "near a training point" when it passes the memorization test against the training
set (d1 < d2/3) and is closer to that point than to any true mean; otherwise "near a true mean" when its
distance to the nearest true mean is below `true_frac` times sqrt(tr Sigma) (sqrt(d s2) for the GMM), the
typical distance of a sample from its own mean; otherwise "neither". For templates the component mean
image is colour (outer) template and "near a true mean" compares templates by |cosine| (colour means are
often all zero)."""

from __future__ import annotations

import numpy as np

from memlab.metrics.memorization import THRESHOLD, nearest_two

TRUE_FRAC = 0.5
TEMPLATE_COSINE = 0.95


def _counts(near_train, near_true) -> dict:
    near_true = near_true & ~near_train
    m = len(near_train)
    return {"n_components": int(m), "near_true_mean": int(near_true.sum()),
            "near_training_point": int(near_train.sum()), "neither": int(m - near_true.sum() - near_train.sum())}


def gmm_diagnostics(means_MxD, variance: float, train_NxD, truth, true_frac: float = TRUE_FRAC) -> dict:
    means = np.asarray(means_MxD, np.float64)
    true_KxD = np.asarray(truth.means_KxD, np.float64)
    d1, d2, _ = nearest_two(means, train_NxD)
    to_true_M = np.sqrt(((means[:, None] - true_KxD[None]) ** 2).sum(-1)).min(1)
    near_train = (d1 < THRESHOLD * d2) & (d1 < to_true_M)
    # sqrt(tr Sigma): sqrt(d s2) for the isotropic GMM, sqrt(r s2 + d tau^2) for the low-rank GMM
    within = float(truth.weights_K @ truth.within_eigenvalues().sum(axis=1))
    near_true = to_true_M < true_frac * np.sqrt(within)
    return {**_counts(near_train, near_true), "learned_variance": float(variance),
            # the shared isotropic variance the estimator learns: s2 on the GMM, tau^2 on the low-rank GMM
            "true_variance": float(getattr(truth, "noise", truth.variance)),
            "mean_distance_to_true": float(to_true_M.mean())}


def template_diagnostics(templates_MxP, colour_means_MxC, colour_variance: float, train_NxD, truth,
                         cosine: float = TEMPLATE_COSINE) -> dict:
    a = np.asarray(templates_MxP, np.float64)
    c = np.asarray(colour_means_MxC, np.float64)
    images_MxD = np.einsum("mc,mp->mcp", c, a).reshape(len(a), -1)
    d1, d2, _ = nearest_two(images_MxD, train_NxD)
    true_KxP = np.asarray(truth.templates_KxP, np.float64)
    unit = lambda v: v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    cos_M = np.abs(unit(a) @ unit(true_KxP).T).max(1)
    # an image at a training point is also close to the true template; it is the memorizing kind only
    # when its colour is not the true colour mean (the posterior would otherwise be generalizing)
    to_true_M = np.sqrt(((images_MxD[:, None] - truth.means_KxD()[None]) ** 2).sum(-1)).min(1)
    near_train = (d1 < THRESHOLD * d2) & (d1 < to_true_M)
    return {**_counts(near_train, cos_M > cosine), "learned_variance": float(colour_variance),
            "true_variance": float(truth.colour_variance), "mean_template_cosine": float(cos_M.mean())}


def mixture_diagnostics(params: dict, train_NxD, truth) -> dict:
    """Diagnostics for a GMM or template mixture estimator's parameters (numpy-convertible dict)."""
    if "means_MxD" in params:
        return gmm_diagnostics(params["means_MxD"], float(params["std"]) ** 2, train_NxD, truth)
    return template_diagnostics(params["templates_MxP"], params["colour_means_MxC"],
                                float(params["colour_std"]) ** 2, train_NxD, truth)
