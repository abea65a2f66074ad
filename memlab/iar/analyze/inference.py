"""Dataset inference with the entropy-memorization law: is an image in the training set?

The entropy-adjusted score of an image is its memorization score minus what the law predicts from its token
entropy (the per-image fit of score on entropy over training and held-out images pooled, so the fit uses no
membership labels). Members should sit above the law. Its AUC (training = positive, held-out = negative) stands
beside the plain memorization score and three membership-inference baselines on teacher-forced
log-probabilities: the loss (mean log-likelihood), the zlib ratio (log-likelihood over zlib bits, Carlini et
al.) and min-k% probability (mean of the k% lowest token log-probabilities, Shi et al.). Intervals: bootstrap
over images, members and non-members resampled separately."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score, roc_curve

from memlab.iar.analyze.context import Context, Result, bootstrap
from memlab.iar.analyze.entropy import linear_fit
from memlab.iar.analyze.scores import token_logprobs, zlib_bits


def min_k_prob(logprobs_BxP: np.ndarray, k_pct: float) -> np.ndarray:
    """Mean of the ceil(k% of P) lowest token log-probabilities of each row."""
    lp = np.sort(np.asarray(logprobs_BxP), axis=1)
    n = max(1, int(np.ceil(lp.shape[1] * k_pct / 100.0)))
    return lp[:, :n].mean(1)


def auc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
    """ROC AUC of telling members (higher score) from non-members."""
    y = np.r_[np.ones(len(member_scores)), np.zeros(len(nonmember_scores))]
    return float(roc_auc_score(y, np.r_[member_scores, nonmember_scores]))


def rank_auc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
    """The same AUC from the Mann-Whitney rank sum (ties count half): cheap enough for the bootstrap."""
    n1, n0 = len(member_scores), len(nonmember_scores)
    ranks = rankdata(np.r_[member_scores, nonmember_scores])
    return float((ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def membership_features(ctx: Context) -> pd.DataFrame:
    """One row per image (training then held-out): member, and each test's score (higher = more likely member)."""
    tr, ho = ctx.train_scores, ctx.heldout_scores
    tokens = np.concatenate([ctx.train_tokens.cpu().numpy(), ctx.heldout_tokens.cpu().numpy()])
    labels = np.concatenate([ctx.data.train_labels.numpy(), ctx.data.heldout_labels.numpy()])
    import torch

    lp_BxP = token_logprobs(ctx.model, torch.as_tensor(tokens), torch.as_tensor(labels), ctx.cfg.batch_size)
    score = np.r_[tr["edit_score"], ho["edit_score"]]
    ent = np.r_[tr["entropy"], ho["entropy"]]
    slope, icpt, _ = linear_fit(ent, score)
    predicted = icpt + slope * ent if np.isfinite(slope) else np.full_like(score, score.mean())
    return pd.DataFrame({
        "member": np.r_[np.ones(len(tr), bool), np.zeros(len(ho), bool)],
        "entropy-adjusted score": score - predicted,
        "memorization score": score,
        "loss": lp_BxP.mean(1),
        "zlib ratio": lp_BxP.sum(1) / zlib_bits(tokens),
        f"min-{ctx.cfg.min_k:g}% prob": min_k_prob(lp_BxP, ctx.cfg.min_k),
    })


def analyze(ctx: Context) -> Result:
    feats = membership_features(ctx)
    member = feats["member"].to_numpy()
    groups = member.astype(int)
    rows = []
    for k, name in enumerate(c for c in feats.columns if c != "member"):
        x = feats[name].to_numpy()
        lo, hi = bootstrap(lambda v, m: rank_auc(v[m], v[~m]), (x, member), ctx.cfg.n_boot, ctx.cfg.level,
                           ctx.rng(300 + k), groups=groups)
        rows.append({"test": name, "auc": auc(x[member], x[~member]), "auc_lo": lo, "auc_hi": hi,
                     "n_members": int(member.sum()), "n_nonmembers": int((~member).sum())})
    table = pd.DataFrame(rows)
    summary = {r["test"]: {"auc": r["auc"], "auc_lo": r["auc_lo"], "auc_hi": r["auc_hi"]} for r in rows}
    return Result(tables={"inference_auc": table, "inference_scores": feats}, figures={"inference": _figure(feats, table)},
                  summary=summary)


def _figure(feats: pd.DataFrame, table: pd.DataFrame):
    from memlab.io import legend_outside, new_figure

    fig, ax = new_figure((6.5, 4.2))
    m = feats["member"].to_numpy()
    for r in table.itertuples():
        fpr, tpr, _ = roc_curve(m, feats[r.test].to_numpy())
        ax.plot(fpr, tpr, label=f"{r.test}: AUC {r.auc:.2f} [{r.auc_lo:.2f}, {r.auc_hi:.2f}]")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false-positive rate (held-out called member)", ylabel="true-positive rate",
           title="dataset inference: training vs held-out images")
    legend_outside(ax)
    return fig
