"""Extraction: which training images does the model regurgitate when given their first tokens?

1. Score every training image by teacher-forced top-1 token accuracy on the positions the model ranks by,
   `model.ranking_positions(prefix)` (positions a continuation must produce: next-scale the finest scale,
   raster every token after the prefix, masked its fixed masked half).
2. Take the top `n_candidates`, keep their first `prefix` units (tokens, or scales for next-scale models),
   and continue greedily.
3. Compare the decoded generation with the image's own tokenizer reconstruction (pixel similarity
   1 - RMSE, pixels in [0, 1]; also the token match after the prefix). The threshold is calibrated on
   held-out images run through the same procedure: the (1 - fpr) quantile of their similarities, so a
   model that memorized nothing "extracts" a fraction fpr of candidates by chance at most.
4. A calibrated threshold alone still lets through about fpr x n_candidates chance hits, so an image also
   has to pass the project's nearest-neighbour rule: the generation is closer to the image's reconstruction
   than `nn_ratio` (1/3) times its distance to the nearest *other* training image's reconstruction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from memlab.errors import UsageError
from memlab.iar.batching import continue_all, decode_all, teacher_forced_scores
from memlab.iar.config import ExtractConfig  # noqa: F401  (re-exported API)
from memlab.iar.interface import IARModel


def pixel_similarity(a_Bx3xHxW: torch.Tensor, b_Bx3xHxW: torch.Tensor) -> np.ndarray:
    """1 - RMSE per image (pixels in [0, 1]): 1 means identical."""
    rmse_B = (a_Bx3xHxW.float() - b_Bx3xHxW.float()).pow(2).flatten(1).mean(1).sqrt()
    return (1.0 - rmse_B).numpy()


def continuation_similarity(model: IARModel, tokens_BxL: torch.Tensor, labels_B: torch.Tensor, prefix: int,
                            batch_size: int = 64) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """(token_match_B, pixel_sim_B, generated images): continue each sequence from its prefix and compare
    with the decoding of its own tokens."""
    gen_BxL = continue_all(model, tokens_BxL, labels_B, prefix, batch_size)
    return similarity_of_continuations(model, gen_BxL, tokens_BxL, prefix, batch_size)


def similarity_of_continuations(model: IARModel, gen_BxL: torch.Tensor, tokens_BxL: torch.Tensor, prefix: int,
                                batch_size: int = 64) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """(token_match_B, pixel_sim_B, generated images) of continuations `gen_BxL` (from `prefix`) of `tokens_BxL`;
    decoding uses the model's tokenizer only, so the continuations may come from an edited model."""
    pos = ~model.revealed_mask(prefix).cpu()  # the tokens the continuation produced
    token_match = (gen_BxL[:, pos] == tokens_BxL[:, pos]).float().mean(1).numpy()
    gen_images = decode_all(model, gen_BxL, batch_size)
    sim = pixel_similarity(gen_images, decode_all(model, tokens_BxL, batch_size))
    return token_match, sim, gen_images


def nearest_neighbour_ratio(gen_Cx3xHxW: torch.Tensor, recon_Nx3xHxW: torch.Tensor, rows_C: np.ndarray,
                            ids_N: np.ndarray) -> np.ndarray:
    """d(generation, own reconstruction) / d(generation, nearest reconstruction of another image id)."""
    d_CxN = torch.cdist(gen_Cx3xHxW.flatten(1).double(), recon_Nx3xHxW.flatten(1).double())
    own_C = d_CxN[torch.arange(len(rows_C)), torch.as_tensor(rows_C)]
    same_CxN = torch.as_tensor(ids_N[None, :] == ids_N[rows_C][:, None])
    other_C = d_CxN.masked_fill(same_CxN, float("inf")).min(dim=1).values
    return (own_C / other_C).numpy()


def calibrate_threshold(heldout_sim: np.ndarray, fpr: float) -> float:
    """The similarity threshold: held-out generations exceed it (strictly) at most a share fpr of the time (the
    empirical (1 - fpr) quantile, rounded up; with few held-out images the realized rate is below fpr)."""
    return float(np.quantile(heldout_sim, 1.0 - fpr, method="higher"))


@dataclass
class ExtractResult:
    table: pd.DataFrame  # one row per candidate, best-scored first
    threshold: float
    heldout_sim: np.ndarray
    prefix: int
    train_acc: np.ndarray  # teacher-forced accuracy of every training row
    order: np.ndarray  # training rows, best-ranked first

    @property
    def n_extracted(self) -> int:
        return int(self.table["extracted"].sum())

    def summary(self) -> dict:
        t = self.table
        return {"n_candidates": len(t), "n_extracted": self.n_extracted, "threshold": self.threshold,
                "prefix": self.prefix, "token_match_mean": float(t["token_match"].mean()),
                "pixel_sim_mean": float(t["pixel_sim"].mean()),
                "heldout_sim_mean": float(np.mean(self.heldout_sim)),
                "extracted_ids": t.loc[t["extracted"], "image_id"].tolist()}


def rank_candidates(model: IARModel, tokens_NxL: torch.Tensor, labels_N: torch.Tensor, prefix: int,
                    batch_size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, accuracy, log-likelihood): training rows by decreasing teacher-forced accuracy; ties (common once a model
    has memorized many images) broken by the mean log-likelihood of the true tokens."""
    acc_N, ll_N = teacher_forced_scores(model, tokens_NxL, labels_N, model.ranking_positions(prefix).cpu(),
                                        batch_size)
    return np.lexsort((-ll_N, -acc_N)), acc_N, ll_N


def attack_prefix(model: IARModel, prefix: int | None) -> int:
    """The prefix the attack gives (the model's default when None), checked against the model."""
    prefix = model.default_prefix() if prefix is None else prefix
    limit = model.prefix_limit()
    if not 1 <= prefix < limit:
        raise UsageError(f"--prefix must be in [1, {limit - 1}] {model.prefix_unit} for this {model.arch} model, "
                         f"got {prefix}")
    return prefix


def extract(model: IARModel, train_tokens_NxL: torch.Tensor, train_labels_N: torch.Tensor, train_ids: np.ndarray,
            heldout_tokens_MxL: torch.Tensor, heldout_labels_M: torch.Tensor, cfg: ExtractConfig = ExtractConfig(),
            candidates: np.ndarray | None = None) -> ExtractResult:
    """Run the extraction attack. `candidates` (rows of the training set) skips the ranking, so an edited
    model can be tested on the same images as the original one."""
    model.eval()
    prefix = attack_prefix(model, cfg.prefix)
    order, acc_N, ll_N = rank_candidates(model, train_tokens_NxL, train_labels_N, prefix, cfg.batch_size)
    if candidates is None:
        candidates = order[:cfg.n_candidates]
    cand = torch.tensor(np.asarray(candidates, dtype=np.int64))
    match, sim, gen_images = continuation_similarity(model, train_tokens_NxL[cand], train_labels_N[cand], prefix,
                                            cfg.batch_size)
    nn = nearest_neighbour_ratio(gen_images, decode_all(model, train_tokens_NxL, cfg.batch_size), cand.numpy(),
                                 np.asarray(train_ids))
    m = min(cfg.n_calib, len(heldout_tokens_MxL))
    _, heldout_sim, _ = continuation_similarity(model, heldout_tokens_MxL[:m], heldout_labels_M[:m], prefix,
                                                cfg.batch_size)
    threshold = calibrate_threshold(heldout_sim, cfg.fpr)
    table = pd.DataFrame({"rank": np.arange(len(cand)), "index": cand.numpy(),
                          "image_id": np.asarray(train_ids)[cand.numpy()], "tf_acc": acc_N[cand.numpy()],
                          "tf_loglik": ll_N[cand.numpy()],
                          "token_match": match, "pixel_sim": sim, "nn_ratio": nn,
                          "extracted": (sim > threshold) & (nn < cfg.nn_ratio)})
    return ExtractResult(table=table, threshold=threshold, heldout_sim=heldout_sim, prefix=prefix, train_acc=acc_N, order=order)
