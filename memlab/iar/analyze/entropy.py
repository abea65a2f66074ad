"""The entropy-memorization law (Huang et al.) on IAR tokens.

Per image: the empirical entropy of its token counts (whole sequence; per scale for next-scale models) beside
its memorization score. Per group: bin the images by memorization score (equal-width bins over [0, 1]), pool
the tokens of each bin and take the entropy of that pooled distribution (the paper's group entropy); fit the
bins' mean score against their group entropy. A pooled entropy grows with the number of images pooled, so bins
of different sizes differ in entropy for that reason alone; the "group of k" law pools k images per bin
(averaged over seeded draws) to take bin size out. Every fit reports slope, intercept and Pearson r with a
bootstrap interval over images (bins rebuilt in every resample); the group laws use half-samples without
replacement, since an image drawn twice would lower its bin's pooled entropy."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from memlab.iar.analyze.context import Context, Result, bootstrap_many
from memlab.iar.analyze.scores import entropy_of_counts, token_entropy


def linear_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(slope, intercept, Pearson r) of y on x; NaN where x or y is constant or there are under 3 points."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan"), float("nan")
    res = stats.linregress(x, y)
    return float(res.slope), float(res.intercept), float(res.rvalue)


def score_bins(scores_B: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index of each score in n_bins equal-width bins over [0, 1] (a score of 1 in the last bin)."""
    return np.clip((np.asarray(scores_B) * n_bins).astype(int), 0, n_bins - 1)


def group_table(tokens_BxN: np.ndarray, scores_B: np.ndarray, vocab: int, n_bins: int, min_bin: int,
                size: int = 0, draws: int = 20, seed: int = 0) -> pd.DataFrame:
    """One row per bin with at least max(min_bin, size) images: bin, n_images, mean score, group entropy (nats).
    size 0: the entropy of all the bin's tokens pooled (Huang et al.); size k: the mean over `draws` seeded draws
    of k of the bin's images, so every bin pools as many tokens (a pooled entropy grows with the images pooled)."""
    b = score_bins(scores_B, n_bins)
    t = np.asarray(tokens_BxN, dtype=np.int64)
    need = max(min_bin, size)
    rows = []
    for k in np.unique(b):
        rows_k = np.flatnonzero(b == k)
        if len(rows_k) < need:
            continue
        if size:
            rng = np.random.default_rng([seed, int(k)])
            ent = np.mean([entropy_of_counts(np.bincount(t[rng.choice(rows_k, size, replace=False)].ravel(),
                                                         minlength=vocab)) for _ in range(draws)])
        else:
            ent = entropy_of_counts(np.bincount(t[rows_k].ravel(), minlength=vocab))
        rows.append({"bin": int(k), "lo": k / n_bins, "hi": (k + 1) / n_bins, "n_images": len(rows_k),
                     "score": float(np.mean(scores_B[rows_k])), "group_entropy": float(ent)})
    return pd.DataFrame(rows, columns=["bin", "lo", "hi", "n_images", "score", "group_entropy"])


def _fits(ctx: Context, tokens: np.ndarray, scores: np.ndarray, ent: np.ndarray, what: str, salt: int) -> list[dict]:
    cfg, V = ctx.cfg, ctx.model.vocab_size
    laws = [("per image", lambda e, s: linear_fit(e, s), (ent, scores), None)]
    for law, size in (("group", 0), (f"group of {cfg.group_size}", cfg.group_size)):
        if law == "group" or size:
            laws.append((law, lambda t, s, size=size: linear_fit(*_xy(group_table(t, s, V, cfg.n_bins, cfg.min_bin,
                                                                                  size, seed=cfg.seed))),
                         (tokens, scores), size))
    out = []
    for law, fit, arrays, size in laws:
        slope, icpt, r = fit(*arrays)
        row = {"tokens": what, "law": law, "slope": slope, "intercept": icpt, "r": r}
        lo, hi = bootstrap_many(fit, arrays, cfg.n_boot, cfg.level, ctx.rng(salt + len(out)), half=size is not None)
        for k, name in enumerate(("slope", "intercept", "r")):
            row[f"{name}_lo"], row[f"{name}_hi"] = float(lo[k]), float(hi[k])
        row["n_points"] = len(scores) if size is None else len(group_table(tokens, scores, V, cfg.n_bins, cfg.min_bin,
                                                                           size, seed=cfg.seed))
        out.append(row)
    return out


def _xy(groups: pd.DataFrame):
    return groups["group_entropy"], groups["score"]


def analyze(ctx: Context) -> Result:
    s = ctx.train_scores
    tokens = ctx.train_tokens.cpu().numpy()
    scores, V = s["edit_score"].to_numpy(), ctx.model.vocab_size
    fits = _fits(ctx, tokens, scores, s["entropy"].to_numpy(), "all", 100)
    slices = ctx.model.scale_slices()
    ent_cols = {}
    if len(slices) > 1:  # per scale: that scale's token entropy against that scale's score
        for k, sl in enumerate(slices):
            if f"edit_s{k}" not in s:
                continue
            ent_cols[f"entropy_s{k}"] = token_entropy(tokens[:, sl], V)
            fits += _fits(ctx, tokens[:, sl], s[f"edit_s{k}"].to_numpy(), ent_cols[f"entropy_s{k}"], f"scale {k}",
                          200 + 10 * k)
    groups = group_table(tokens, scores, V, ctx.cfg.n_bins, ctx.cfg.min_bin).assign(pooled="all")
    if ctx.cfg.group_size:
        equal = group_table(tokens, scores, V, ctx.cfg.n_bins, ctx.cfg.min_bin, ctx.cfg.group_size, seed=ctx.cfg.seed)
        groups = pd.concat([groups, equal.assign(pooled=f"{ctx.cfg.group_size} images")], ignore_index=True)
    fit_df = pd.DataFrame(fits)
    per_image = s[["image_id", "copies", "edit_score", "token_match", "entropy"]].assign(**ent_cols)
    main = fit_df[(fit_df["tokens"] == "all")].set_index("law")
    summary = {law: {k: float(main.loc[law, k]) for k in ("slope", "slope_lo", "slope_hi", "r", "r_lo", "r_hi")}
               | {"n_points": int(main.loc[law, "n_points"])} for law in main.index}
    return Result(tables={"entropy_fits": fit_df, "entropy_groups": groups, "entropy_images": per_image},
                  figures={"entropy": _figure(per_image, groups, main, ctx.model.arch)}, summary=summary)


def _figure(per_image: pd.DataFrame, groups: pd.DataFrame, main: pd.DataFrame, arch: str):
    from memlab.io import new_figure

    laws = list(main.index)  # per image, group, group of k
    fig, axes = new_figure((4.6 * len(laws), 3.8), 1, len(laws), squeeze=False)
    for ax, law in zip(axes[0], laws):
        if law == "per image":
            x, y, size = per_image["entropy"], per_image["edit_score"], 10
            ax.set_xlabel("token entropy of the image (nats)")
        else:
            g = groups[groups["pooled"] == ("all" if law == "group" else law.removeprefix("group of ") + " images")]
            x, y, size = g["group_entropy"], g["score"], 10 + 3 * g["n_images"]
            ax.set_xlabel(f"entropy of the bin's tokens, {'all' if law == 'group' else law.removeprefix('group of ')} "
                          "images pooled (nats)", fontsize=8)
        ax.scatter(x, y, s=size, alpha=0.6)
        row = main.loc[law]
        if np.isfinite(row["slope"]) and len(x):
            xs = np.linspace(x.min(), x.max(), 20)
            ax.plot(xs, row["intercept"] + row["slope"] * xs, "k--", lw=1)
        ax.set_title(f"{law}: slope {row['slope']:.3g} [{row['slope_lo']:.3g}, {row['slope_hi']:.3g}],\n"
                     f"r {row['r']:.2f} [{row['r_lo']:.2f}, {row['r_hi']:.2f}]", fontsize=8)
        ax.set_ylabel("memorization score (1 - normalized edit distance)", fontsize=8)
    fig.suptitle(f"{arch}: the entropy-memorization law on IAR tokens (marker size: images in the bin)", fontsize=9)
    return fig
