"""The per-image measures every analysis shares: the memorization score of a greedy continuation (token match
and normalized edit distance against the true tokens after the prefix, overall and per scale), the empirical
token entropy of a sequence, its compressibility, and teacher-forced per-token log-probabilities.

Legend: B images, L tokens per sequence, V codes; scores are in [0, 1] with 1 an exact continuation."""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import torch

from memlab.iar.batching import continue_all
from memlab.iar.interface import IARModel


def edit_distance(a_BxN: np.ndarray, b_BxM: np.ndarray) -> np.ndarray:
    """Levenshtein distance of each row pair (insertions, deletions, substitutions cost 1): B ints. The dynamic
    programme runs over positions and is vectorized over the rows."""
    a, b = np.asarray(a_BxN), np.asarray(b_BxM)
    B, N, M = len(a), a.shape[1], b.shape[1]
    prev_BxM1 = np.tile(np.arange(M + 1), (B, 1))
    for i in range(1, N + 1):
        cur = np.empty_like(prev_BxM1)
        cur[:, 0] = i
        sub_BxM = prev_BxM1[:, :-1] + (a[:, i - 1:i] != b)
        dele_BxM = prev_BxM1[:, 1:] + 1
        best_BxM = np.minimum(sub_BxM, dele_BxM)
        for j in range(1, M + 1):  # insertions chain along the row
            cur[:, j] = np.minimum(best_BxM[:, j - 1], cur[:, j - 1] + 1)
        prev_BxM1 = cur
    return prev_BxM1[:, M]


def edit_score(gen_BxN: np.ndarray, true_BxN: np.ndarray) -> np.ndarray:
    """1 - Levenshtein distance / length: 1 for an exact continuation, 0 for one sharing no token in place."""
    n = np.asarray(true_BxN).shape[1]
    if n == 0:
        return np.full(len(true_BxN), np.nan)
    return 1.0 - edit_distance(gen_BxN, true_BxN) / n


def continuation_table(model: IARModel, gen_BxL: torch.Tensor, true_BxL: torch.Tensor, prefix: int) -> pd.DataFrame:
    """Scores of continuations `gen_BxL` (from `prefix`) of `true_BxL`: token_match and edit_score over the
    positions the continuation produced, and the same per scale (match_s{i}, edit_s{i}) for every scale with
    such positions (one scale, the whole sequence, unless the model has several)."""
    produced_L = ~model.revealed_mask(prefix).cpu()
    gen, true = gen_BxL.cpu().numpy(), true_BxL.cpu().numpy()
    cols = {"token_match": (gen[:, produced_L] == true[:, produced_L]).mean(1),
            "edit_score": edit_score(gen[:, produced_L], true[:, produced_L])}
    slices = model.scale_slices()
    if len(slices) > 1:
        for s, sl in enumerate(slices):
            pos = np.zeros(len(produced_L), bool)
            pos[sl] = True
            pos &= produced_L.numpy()
            if pos.any():
                cols[f"match_s{s}"] = (gen[:, pos] == true[:, pos]).mean(1)
                cols[f"edit_s{s}"] = edit_score(gen[:, pos], true[:, pos])
    return pd.DataFrame(cols)


def memorization_scores(model: IARModel, tokens_BxL: torch.Tensor, labels_B: torch.Tensor, prefix: int,
                        batch_size: int = 64) -> tuple[pd.DataFrame, torch.Tensor]:
    """(scores table B rows, greedy continuations B x L) of every sequence from its own first `prefix` units."""
    gen_BxL = continue_all(model, tokens_BxL, labels_B, prefix, batch_size)
    return continuation_table(model, gen_BxL, tokens_BxL, prefix), gen_BxL


def entropy_of_counts(counts_V: np.ndarray) -> float:
    """Shannon entropy in nats of a count vector (0 for an empty one)."""
    c = np.asarray(counts_V, dtype=np.float64)
    c = c[c > 0]
    if c.sum() == 0:
        return 0.0
    p = c / c.sum()
    return float(-(p * np.log(p)).sum())


def token_entropy(tokens_BxN: np.ndarray, vocab: int) -> np.ndarray:
    """Empirical entropy (nats) of each row's token counts: 0 for a constant row, log V for a row using every
    code equally often."""
    t = np.asarray(tokens_BxN, dtype=np.int64)
    return np.array([entropy_of_counts(np.bincount(row, minlength=vocab)) for row in t])


def group_entropy(tokens_BxN: np.ndarray, groups_B: np.ndarray, vocab: int) -> pd.Series:
    """Huang et al.'s group entropy: the entropy (nats) of the token distribution pooled over the rows of each
    group, indexed by group."""
    t, g = np.asarray(tokens_BxN, dtype=np.int64), np.asarray(groups_B)
    return pd.Series({k: entropy_of_counts(np.bincount(t[g == k].ravel(), minlength=vocab)) for k in np.unique(g)})


def compressed_ratio(tokens_BxN: np.ndarray) -> np.ndarray:
    """zlib-compressed bytes / raw bytes of each row (tokens as little-endian uint16): small = repetitive."""
    t = np.asarray(tokens_BxN).astype("<u2")
    return np.array([len(zlib.compress(row.tobytes(), 9)) / max(1, row.nbytes) for row in t])


def zlib_bits(tokens_BxN: np.ndarray) -> np.ndarray:
    """zlib-compressed size of each row in bits (the reference entropy of Carlini et al.'s zlib ratio)."""
    t = np.asarray(tokens_BxN).astype("<u2")
    return np.array([8.0 * len(zlib.compress(row.tobytes(), 9)) for row in t])


def token_logprobs(model: IARModel, tokens_BxL: torch.Tensor, labels_B: torch.Tensor,
                   batch_size: int = 64) -> np.ndarray:
    """Teacher-forced log-probability (nats) of every true token at the model's scored positions: B x P."""
    pos_L = model.scored_positions().cpu()
    out = []
    with torch.no_grad():
        for i in range(0, len(tokens_BxL), batch_size):
            t, y = tokens_BxL[i:i + batch_size], labels_B[i:i + batch_size]
            logits_BxPxV = model.teacher_forced_logits(t, y)[:, pos_L.to(t.device)].float()
            lp = torch.gather(logits_BxPxV.log_softmax(-1), 2, t[:, pos_L.to(t.device)][..., None])[..., 0]
            out.append(lp.double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, int(pos_L.sum())))
