"""Sample quality of an IAR model: held-out token NLL (nats per token, teacher forced) and a Frechet
distance between generated and held-out images in a feature space.

Features: the model's `encoder_features(images)` if it has one, else its attached tokenizer's
`encode_latent(images)` (the encoder's pre-quantization output, flattened), else 8x8 average-pooled pixels. The features are projected on
the top `pca_dim` principal directions of the held-out features before the Frechet distance, because a
few dozen samples cannot estimate a full covariance in hundreds of dimensions.
"""

from __future__ import annotations


import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F

from memlab.iar.config import QualityConfig  # noqa: F401  (re-exported API)
from memlab.iar.extract import decode_all, teacher_forced_scores
from memlab.iar.interface import IARModel


def heldout_nll(model: IARModel, tokens_BxL: torch.Tensor, labels_B: torch.Tensor, batch_size: int = 64) -> float:
    """Mean teacher-forced cross-entropy, nats per predicted token: over `model.scored_positions()` (every
    position of autoregressive models; masked models: their masked half, the revealed half is given)."""
    # every sequence scores the same positions, so the mean of per-sequence means is the mean per token
    _, ll_B = teacher_forced_scores(model, tokens_BxL, labels_B, model.scored_positions().cpu(), batch_size)
    return -float(ll_B.mean())


def _encoder(model: IARModel):
    """The model's encoder_features, else its attached tokenizer's encode_latent, else None."""
    fn = getattr(model, "encoder_features", None)
    if callable(fn):
        return fn
    try:
        tokenizer = model.tokenizer
    except (AttributeError, RuntimeError):  # no tokenizer attached
        return None
    fn = getattr(tokenizer, "encode_latent", None)
    return fn if callable(fn) else None


def image_features(model: IARModel, images_Bx3xHxW: torch.Tensor) -> np.ndarray:
    enc = _encoder(model)
    with torch.no_grad():
        feats = enc(images_Bx3xHxW) if callable(enc) else F.adaptive_avg_pool2d(images_Bx3xHxW.float(), 8)
    return feats.flatten(1).double().numpy()


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
    with torch.no_grad():
        toks = [model.generate(labels_B[i:i + batch_size], seeds[i:i + batch_size])
                for i in range(0, len(seeds), batch_size)]
    return decode_all(model, torch.cat(toks), batch_size)


def measure_quality(model: IARModel, heldout_images: torch.Tensor, heldout_tokens_BxL: torch.Tensor,
                    heldout_labels_B: torch.Tensor, cfg: QualityConfig = QualityConfig()) -> dict[str, float]:
    """{'nll': held-out NLL, 'fd': Frechet distance of n_generate samples (labels cycling through the
    held-out labels) to the held-out images}."""
    if hasattr(model, "eval"):
        model.eval()
    n = cfg.n_generate
    labels = heldout_labels_B[torch.arange(n) % len(heldout_labels_B)]
    gen = generate_images(model, labels, list(range(cfg.seed, cfg.seed + n)), cfg.batch_size)
    fd = frechet_distance(image_features(model, gen), image_features(model, heldout_images), cfg.pca_dim)
    return {"nll": heldout_nll(model, heldout_tokens_BxL, heldout_labels_B, cfg.batch_size), "fd": fd}
