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
                                nearest_neighbour_ratio, similarity_of_continuations)
from memlab.iar.interface import IARModel
from memlab.iar.interventions import Edit
from memlab.iar.quality import frechet_distance, image_features

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
    out = _outputs(model, base)
    base.metrics = _finish(_evaluate(model, base, out, classifier), _sample_nll(model, base, out.samples_SxL), base)
    return base


@dataclass
class Outputs:
    """What one model (edited or not) makes of the baseline's inputs, as tokens; every measure is computed from
    these, so a model evaluated alone and one of E edits evaluated stacked on the batch axis
    (memlab.iar.batched) give the same numbers."""

    samples_SxL: torch.Tensor  # generated from the baseline's labels and seeds
    heldout_gen_MxL: torch.Tensor  # held-out sequences continued from the prefix (the recalibrated threshold)
    gen_T: torch.Tensor  # targets continued from the prefix
    gen_C: torch.Tensor  # controls continued from the prefix
    heldout_ll_M: np.ndarray  # mean log-likelihood of each held-out sequence at the scored positions


def _inputs_TC(base: Baseline) -> tuple[torch.Tensor, torch.Tensor]:
    rows = torch.as_tensor(np.concatenate([base.rows_T, base.rows_C]).astype(np.int64))
    return base.train_tokens_NxL[rows], base.train_labels_N[rows]


def _outputs(model: IARModel, base: Baseline) -> Outputs:
    from memlab.iar.batching import continue_all

    tokens, labels = _inputs_TC(base)
    gen = continue_all(model, tokens, labels, base.prefix, base.batch_size)
    _, ll = teacher_forced_scores(model, base.heldout_tokens_MxL, base.heldout_labels_M,
                                  model.scored_positions().cpu(), base.batch_size)
    return Outputs(generate_all(model, base.sample_labels_S, base.sample_seeds, base.batch_size),
                   continue_all(model, base.heldout_tokens_MxL, base.heldout_labels_M, base.prefix, base.batch_size),
                   gen[:len(base.rows_T)], gen[len(base.rows_T):], ll)


def _outputs_E(model: IARModel, edits: list[Edit], base: Baseline, batch_size: int) -> list[Outputs]:
    """`_outputs` of each edit, the E edits stacked on the batch axis (`batch_size` rows per pass)."""
    from memlab.iar.batched import continue_greedy_E, generate_E, teacher_forced_scores_E

    tokens, labels = _inputs_TC(base)
    gen_ExN = continue_greedy_E(model, edits, tokens, labels, base.prefix, batch_size)
    held_ExM = continue_greedy_E(model, edits, base.heldout_tokens_MxL, base.heldout_labels_M, base.prefix, batch_size)
    _, ll_ExM = teacher_forced_scores_E(model, edits, base.heldout_tokens_MxL, base.heldout_labels_M,
                                        model.scored_positions().cpu(), batch_size)
    samples_ExS = generate_E(model, edits, base.sample_labels_S, base.sample_seeds, batch_size)
    n_T = len(base.rows_T)
    return [Outputs(samples_ExS[e], held_ExM[e], gen_ExN[e, :n_T], gen_ExN[e, n_T:], ll_ExM[e])
            for e in range(len(edits))]


def _extraction(model: IARModel, base: Baseline, rows: np.ndarray, gen_BxL: torch.Tensor,
                threshold_recal: float) -> dict:
    if not len(rows):
        return {"n": 0, "extracted": 0, "extracted_recal": 0, "token_match": float("nan"),
                "pixel_sim": float("nan")}
    match, sim, gen = similarity_of_continuations(model, gen_BxL, base.train_tokens_NxL[torch.as_tensor(rows)],
                                                  base.prefix, base.batch_size)
    nn = nearest_neighbour_ratio(gen, base.recon_Nx3xHxW, rows, base.train_ids_N)
    close = nn < base.nn_ratio
    return {"n": len(rows), "extracted": int(((sim > base.threshold) & close).sum()),
            "extracted_recal": int(((sim > threshold_recal) & close).sum()),
            "token_match": float(match.mean()), "pixel_sim": float(sim.mean())}


def _evaluate(model: IARModel, base: Baseline, out: Outputs, classifier) -> dict:
    """Every measure of one model from its outputs (decoding uses only the tokenizer, which edits leave alone)."""
    _, heldout_sim, _ = similarity_of_continuations(model, out.heldout_gen_MxL, base.heldout_tokens_MxL, base.prefix,
                                                    base.batch_size)
    recal = calibrate_threshold(heldout_sim, base.fpr)
    result = {}
    for name, rows, gen in (("T", base.rows_T, out.gen_T), ("C", base.rows_C, out.gen_C)):
        result.update({f"{name}_{k}": v for k, v in _extraction(model, base, rows, gen, recal).items()})
    images = decode_all(model, out.samples_SxL, base.batch_size)
    result["fd"] = frechet_distance(image_features(model, images), base.heldout_features_MxF, base.pca_dim)
    result["heldout_nll"] = -float(out.heldout_ll_M.mean())  # = quality.heldout_nll: equal-length means
    result["class_consistency"] = float("nan")
    if classifier is not None:
        from memlab.iar.classifier import class_consistency

        result["class_consistency"] = class_consistency(classifier, images, base.sample_labels_S)
    result["threshold_recal"] = recal
    return result


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
        out = _outputs(model, base)
    result = _finish(_evaluate(model, base, out, classifier), _sample_nll(model, base, out.samples_SxL), base, seconds)
    return {**edit.describe(), **result, "eval_seconds": time.perf_counter() - t0}


def score_edits(model: IARModel, edits: list[Edit], base: Baseline, classifier=None,
                seconds: list[float] | None = None, batch_size: int = 256) -> list[dict]:
    """`score_edit` of each of E unit edits, the edits stacked on the batch axis (one pass over E x inputs, not
    E passes; memlab.iar.batched) with `batch_size` rows per pass; the same numbers as E `score_edit` calls.
    `eval_seconds` is the batch's evaluation time divided by E."""
    t0 = time.perf_counter()
    outs = _outputs_E(model, edits, base, batch_size) if edits else []
    rows = [{**edit.describe(), **_finish(_evaluate(model, base, out, classifier),
                                          _sample_nll(model, base, out.samples_SxL), base,
                                          seconds[e] if seconds is not None else 0.0)}
            for e, (edit, out) in enumerate(zip(edits, outs))]
    per_edit = (time.perf_counter() - t0) / max(1, len(edits))
    return [{**r, "eval_seconds": per_edit} for r in rows]


def score_model(model: IARModel, reference: IARModel, base: Baseline, classifier=None, seconds: float = 0.0,
                describe: dict | None = None) -> dict:
    """The yardstick of a model a method produced (a new run), against the unedited `reference`."""
    out = _outputs(model, base)
    return {**(describe or {}), **_finish(_evaluate(model, base, out, classifier),
                                          _sample_nll(reference, base, out.samples_SxL), base, seconds)}
