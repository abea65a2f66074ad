"""The yardstick: one set of numbers for every intervention on an IAR model.

`Baseline` is computed once from the unedited model: the prefix, the extraction threshold (calibrated on
held-out continuations of the unedited model and then kept fixed), the evaluation sets T and C (see
`evalsets`), the reconstructions used by the nearest-neighbour rule, the sample labels and seeds, and the
unedited model's own metrics. `score_edit` / `score_model` measure one intervention:

- extraction on T and on C with the fixed threshold (`T_extracted`, `C_extracted`), beside today's per-model
  recalibration (`*_extracted_recal`); the continuous scores behind them (`*_token_match`, `*_pixel_sim`);
- specificity: the relative drop on T minus the relative drop on C (NaN when C is empty);
- quality: held-out NLL (nats per token), the NLL of the model's own samples under the unedited model,
  the Frechet distance of `n_samples` samples to the held-out images, class consistency of the samples
  (a classifier trained once per image set, `classifier.ensure_classifier`), and the seconds it took.
Costs for the matched-cost verdict are the increases over the unedited model (`cost_*`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from memlab.iar.batching import decode_all, generate_all, teacher_forced_scores
from memlab.iar.evalsets import EvalSets
from memlab.iar.extract import (ExtractConfig, attack_prefix, calibrate_threshold, continuation_similarity,
                                nearest_neighbour_ratio)
from memlab.iar.interface import IARModel
from memlab.iar.interventions import Edit
from memlab.iar.quality import frechet_distance, heldout_nll, image_features

# cost measure -> (metric, +1 if a higher metric is a higher cost, -1 if lower is)
COSTS = {"cost_heldout_nll": ("heldout_nll", 1), "cost_sample_nll": ("sample_nll", 1), "cost_fd": ("fd", 1),
         "cost_class_consistency": ("class_consistency", -1)}


@dataclass
class Baseline:
    """What every intervention is scored against; shapes: T, C rows of the (folded) training set."""

    sets: EvalSets
    prefix: int
    threshold: float
    nn_ratio: float
    fpr: float
    rows_T: np.ndarray
    rows_C: np.ndarray
    train_tokens_NxL: torch.Tensor
    train_labels_N: torch.Tensor
    train_ids_N: np.ndarray
    recon_Nx3xHxW: torch.Tensor  # decoded training tokens: what a continuation is compared with
    heldout_tokens_MxL: torch.Tensor
    heldout_labels_M: torch.Tensor
    heldout_features_MxF: np.ndarray
    sample_labels_S: torch.Tensor
    sample_seeds: list[int]
    pca_dim: int
    batch_size: int
    metrics: dict | None = None  # the unedited model's, filled by make_baseline


def make_baseline(model: IARModel, data, sets: EvalSets, ext_cfg: ExtractConfig, n_samples: int = 256,
                  pca_dim: int = 16, seed: int = 0, classifier=None) -> Baseline:
    """The fixed reference of one base run (`data`: pipeline.RunData; `sets`: its evaluation sets)."""
    from memlab.iar.batching import tokenize_all

    model.eval()
    bs = ext_cfg.batch_size
    prefix = attack_prefix(model, ext_cfg.prefix)
    train_tokens = tokenize_all(model, data.train_images, bs)
    heldout_tokens = tokenize_all(model, data.heldout_images, bs)
    m = min(ext_cfg.n_calib, len(heldout_tokens))
    _, heldout_sim, _ = continuation_similarity(model, heldout_tokens[:m], data.heldout_labels[:m], prefix, bs)
    ids = np.asarray(data.train_ids)
    labels = data.heldout_labels[torch.arange(n_samples) % len(data.heldout_labels)]
    base = Baseline(sets=sets, prefix=prefix, threshold=calibrate_threshold(heldout_sim, ext_cfg.fpr),
                    nn_ratio=ext_cfg.nn_ratio, fpr=ext_cfg.fpr, rows_T=sets.rows(ids, "target"),
                    rows_C=sets.rows(ids, "control"), train_tokens_NxL=train_tokens,
                    train_labels_N=data.train_labels, train_ids_N=ids, recon_Nx3xHxW=decode_all(model, train_tokens, bs),
                    heldout_tokens_MxL=heldout_tokens[:m], heldout_labels_M=data.heldout_labels[:m],
                    heldout_features_MxF=image_features(model, data.heldout_images), sample_labels_S=labels,
                    sample_seeds=list(range(seed, seed + n_samples)), pca_dim=pca_dim, batch_size=bs)
    samples = _samples(model, base)
    base.metrics = _finish(_measure(model, base, samples, classifier), _sample_nll(model, base, samples), base)
    return base


def _extraction(model: IARModel, base: Baseline, rows: np.ndarray, threshold_recal: float) -> dict:
    if not len(rows):
        return {"n": 0, "extracted": 0, "extracted_recal": 0, "token_match": float("nan"),
                "pixel_sim": float("nan")}
    rows_t = torch.as_tensor(rows)
    match, sim, gen = continuation_similarity(model, base.train_tokens_NxL[rows_t], base.train_labels_N[rows_t],
                                              base.prefix, base.batch_size)
    nn = nearest_neighbour_ratio(gen, base.recon_Nx3xHxW, rows, base.train_ids_N)
    close = nn < base.nn_ratio
    return {"n": len(rows), "extracted": int(((sim > base.threshold) & close).sum()),
            "extracted_recal": int(((sim > threshold_recal) & close).sum()),
            "token_match": float(match.mean()), "pixel_sim": float(sim.mean())}


def _samples(model: IARModel, base: Baseline) -> torch.Tensor:
    return generate_all(model, base.sample_labels_S, base.sample_seeds, base.batch_size)


def _measure(model: IARModel, base: Baseline, samples_SxL: torch.Tensor, classifier) -> dict:
    """Everything measured on the model as it is now (edited, or a new run)."""
    _, heldout_sim, _ = continuation_similarity(model, base.heldout_tokens_MxL, base.heldout_labels_M, base.prefix,
                                                base.batch_size)
    recal = calibrate_threshold(heldout_sim, base.fpr)
    out = {}
    for name, rows in (("T", base.rows_T), ("C", base.rows_C)):
        out.update({f"{name}_{k}": v for k, v in _extraction(model, base, rows, recal).items()})
    images = decode_all(model, samples_SxL, base.batch_size)
    out["fd"] = frechet_distance(image_features(model, images), base.heldout_features_MxF, base.pca_dim)
    out["heldout_nll"] = heldout_nll(model, base.heldout_tokens_MxL, base.heldout_labels_M, base.batch_size)
    out["class_consistency"] = float("nan")
    if classifier is not None:
        from memlab.iar.classifier import class_consistency

        out["class_consistency"] = class_consistency(classifier, images, base.sample_labels_S)
    out["threshold_recal"] = recal
    return out


def _sample_nll(reference: IARModel, base: Baseline, samples_SxL: torch.Tensor) -> float:
    """NLL (nats per token) of samples under the unedited model: how far an edit's samples drift."""
    _, ll = teacher_forced_scores(reference, samples_SxL, base.sample_labels_S, reference.scored_positions().cpu(),
                                  base.batch_size)
    return -float(ll.mean())


def _finish(measured: dict, sample_nll: float, base: Baseline, seconds: float = 0.0) -> dict:
    out = {**measured, "sample_nll": sample_nll, "seconds": seconds}
    ref = base.metrics or out
    drops = []
    for name in ("T", "C"):
        b = ref[f"{name}_extracted"]
        drops.append((b - out[f"{name}_extracted"]) / b if b else float("nan"))
    out["specificity"] = drops[0] - drops[1]
    for cost, (metric, sign) in COSTS.items():
        out[cost] = sign * (out[metric] - ref[metric])
    return out


def score_edit(model: IARModel, edit: Edit, base: Baseline, classifier=None, seconds: float = 0.0) -> dict:
    """The yardstick of `edit` applied to the unedited `model` (restored afterwards); `seconds`: the compute
    the intervention cost (choosing the units: a localizer's time); `eval_seconds`: this evaluation's."""
    t0 = time.perf_counter()
    with edit.applied(model):
        samples = _samples(model, base)
        measured = _measure(model, base, samples, classifier)
    out = _finish(measured, _sample_nll(model, base, samples), base, seconds)
    return {**edit.describe(), **out, "eval_seconds": time.perf_counter() - t0}


def score_model(model: IARModel, reference: IARModel, base: Baseline, classifier=None, seconds: float = 0.0,
                describe: dict | None = None) -> dict:
    """The yardstick of a model a method produced (a new run), against the unedited `reference`."""
    samples = _samples(model, base)
    return {**(describe or {}), **_finish(_measure(model, base, samples, classifier),
                                          _sample_nll(reference, base, samples), base, seconds)}
