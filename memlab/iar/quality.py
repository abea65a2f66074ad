"""Sample quality of an IAR model: held-out token NLL (nats per token, teacher forced) and a Frechet
distance between generated and held-out images in a feature space.

Features: the model's own `quality_features(images)` (our models: their tokenizer's encoder output before
quantization, flattened; the fake model: 8x8 average-pooled pixels). The features are projected on the
top `pca_dim` principal directions of the held-out features before the Frechet distance, because a few
dozen samples cannot estimate a full covariance in hundreds of dimensions.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch

from memlab.iar.batching import decode_all, generate_all, teacher_forced_scores
from memlab.iar.config import QualityConfig  # noqa: F401  (re-exported API)
from memlab.iar.interface import IARModel


def heldout_nll(model: IARModel, tokens_BxL: torch.Tensor, labels_B: torch.Tensor, batch_size: int = 64) -> float:
    """Mean teacher-forced cross-entropy, nats per predicted token: over `model.scored_positions()` (every
    position of autoregressive models; masked models: their masked half, the revealed half is given)."""
    # every sequence scores the same positions, so the mean of per-sequence means is the mean per token
    _, ll_B = teacher_forced_scores(model, tokens_BxL, labels_B, model.scored_positions().cpu(), batch_size)
    return -float(ll_B.mean())


def image_features(model: IARModel, images_Bx3xHxW: torch.Tensor) -> np.ndarray:
    """`model.quality_features` as float64 B x F."""
    with torch.no_grad():
        feats_BxF = model.quality_features(images_Bx3xHxW)
    return feats_BxF.flatten(1).double().cpu().numpy()


def frechet_from_moments(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """|mu1 - mu2|^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2))."""
    covmean = scipy.linalg.sqrtm(cov1 @ cov2)
    covmean = np.real(covmean)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2.0 * np.trace(covmean))


def frechet_distance(feat_a_NxF: np.ndarray, feat_b_MxF: np.ndarray, pca_dim: int | None = None) -> float:
    """Frechet distance between two feature samples, in the top `pca_dim` principal directions of b."""
    if pca_dim is not None:
        center = feat_b_MxF.mean(0)
        _, _, vt = np.linalg.svd(feat_b_MxF - center, full_matrices=False)
        basis_FxP = vt[:min(pca_dim, len(vt))].T
        feat_a_NxF, feat_b_MxF = (feat_a_NxF - center) @ basis_FxP, (feat_b_MxF - center) @ basis_FxP
    moments = [(f.mean(0), np.atleast_2d(np.cov(f, rowvar=False))) for f in (feat_a_NxF, feat_b_MxF)]
    return frechet_from_moments(*moments[0], *moments[1])


def generate_images(model: IARModel, labels_B: torch.Tensor, seeds: list[int], batch_size: int = 64) -> torch.Tensor:
    """Decoded samples B x 3 x H x W in [0, 1]; sample i depends only on seeds[i]."""
    return decode_all(model, generate_all(model, labels_B, seeds, batch_size), batch_size)


def measure_quality(model: IARModel, heldout_images: torch.Tensor, heldout_tokens_BxL: torch.Tensor,
                    heldout_labels_B: torch.Tensor, cfg: QualityConfig = QualityConfig()) -> dict[str, float]:
    """{'nll': held-out NLL, 'fd': Frechet distance of n_generate samples (labels cycling through the
    held-out labels) to the held-out images}."""
    model.eval()
    n = cfg.n_generate
    labels = heldout_labels_B[torch.arange(n) % len(heldout_labels_B)]
    gen = generate_images(model, labels, list(range(cfg.seed, cfg.seed + n)), cfg.batch_size)
    fd = frechet_distance(image_features(model, gen), image_features(model, heldout_images), cfg.pca_dim)
    return {"nll": heldout_nll(model, heldout_tokens_BxL, heldout_labels_B, cfg.batch_size), "fd": fd}
