"""Prefix perturbation and redundancy (Zhang et al., "Beyond Frequency").

Perturb m of the tokens the prefix reveals (positions drawn at random per image; the token replaced by another
code at random, or by the nearest other codebook entry), continue greedily from the perturbed prefix, and
record the drop of the memorization score (unperturbed minus perturbed) for memorized and non-memorized images.

Two per-image redundancy measures: `redundancy_perturb`, the share of the prefix tokens that can be perturbed
(random mode, every draw, every smaller m too) before the continuation changes (its edit score against the
unperturbed continuation falls below `memorized_at`: a next-scale continuation of 80 tokens nearly always
changes in some token, which says nothing); `redundancy_zlib`, 1 - zlib
bytes / raw bytes of the token sequence (repetitive sequences compress). An image is low-redundancy on the
first measure when its continuation already changes at the smallest m, on the second when it lies below the
training images' median; the summary gives the share of memorized images that are low-redundancy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from memlab.errors import UsageError
from memlab.iar.analyze.context import Context, Result, mean_ci
from memlab.iar.analyze.scores import compressed_ratio, continuation_table, edit_score
from memlab.iar.batching import continue_all
from memlab.iar.interface import IARModel


def prefix_positions(model: IARModel, prefix: int) -> np.ndarray:
    """Token positions the prefix reveals (what a perturbation may change)."""
    return np.flatnonzero(model.revealed_mask(prefix).cpu().numpy())


def perturb_counts(model: IARModel, prefix: int, ms: tuple[int, ...]) -> list[int]:
    """The m values: `ms`, or 1, 2, 4, ... below the number of prefix tokens and that number; checked."""
    n = len(prefix_positions(model, prefix))
    if ms:
        bad = [m for m in ms if m > n]
        if bad:
            raise UsageError(f"--ms must be in [1, {n}] (the prefix of {prefix} {model.prefix_unit} reveals {n} "
                             f"tokens), got {bad[0]}")
        return sorted(set(ms))
    return sorted({2 ** i for i in range(n.bit_length()) if 2 ** i < n} | {n})


def code_vectors(model: IARModel) -> torch.Tensor:
    """V x C vectors of the codes (IARModel.code_vectors: the codebook, or each code's decoded image), so
    'nearest' means nearest in what the code stands for."""
    vectors = model.code_vectors()
    assert vectors.shape[0] == model.vocab_size, f"{vectors.shape[0]} code vectors for {model.vocab_size} codes"
    return vectors


def nearest_other(vectors_VxC: torch.Tensor) -> np.ndarray:
    """For each code, the nearest other code (L2)."""
    d = torch.cdist(vectors_VxC.double(), vectors_VxC.double())
    d.fill_diagonal_(float("inf"))
    return d.argmin(1).numpy()


def perturb_tokens(tokens_BxL: np.ndarray, positions: np.ndarray, m: int, mode: str, vocab: int,
                   nearest_V: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """Copy of tokens with m of `positions` (drawn per row) replaced: mode 'random' by another code drawn
    uniformly, 'nearest' by `nearest_V` of the code there. Every replaced token differs from the original."""
    out = np.array(tokens_BxL, copy=True)
    for b in range(len(out)):
        pos = rng.choice(positions, m, replace=False)
        if mode == "random":
            out[b, pos] = (out[b, pos] + rng.integers(1, vocab, m)) % vocab
        else:
            out[b, pos] = nearest_V[out[b, pos]]
    return out


def perturbation_table(ctx: Context) -> pd.DataFrame:
    """One row per (image, mode, m, draw): the perturbed continuation's scores, the drop, and whether it changed
    (edit score against the unperturbed continuation below `memorized_at`)."""
    model, cfg, prefix = ctx.model, ctx.cfg, ctx.prefix
    tokens, labels = ctx.train_tokens.cpu(), ctx.data.train_labels
    base = ctx.train_scores
    positions = prefix_positions(model, prefix)
    produced_L = ~model.revealed_mask(prefix).cpu()
    gen0 = ctx.train_continuations.cpu()
    nearest_V = nearest_other(code_vectors(model)) if "nearest" in cfg.modes else None
    rows = []
    for mi, mode in enumerate(cfg.modes):
        for m in perturb_counts(model, prefix, cfg.ms):
            for draw in range(cfg.n_draws):
                rng = ctx.rng(1000 + 100000 * mi + 100 * m + draw)
                pert = torch.as_tensor(perturb_tokens(tokens.numpy(), positions, m, mode, model.vocab_size,
                                                      nearest_V, rng))
                gen = continue_all(model, pert.to(ctx.train_tokens.device), labels, prefix, cfg.batch_size).cpu()
                sc = continuation_table(model, gen, tokens, prefix)
                rows.append(pd.DataFrame({
                    "image_id": base["image_id"], "memorized": base["memorized"], "mode": mode, "m": m,
                    "draw": draw, "edit_score": sc["edit_score"], "token_match": sc["token_match"],
                    "drop": base["edit_score"].to_numpy() - sc["edit_score"].to_numpy(),
                    "changed": edit_score(gen[:, produced_L].numpy(), gen0[:, produced_L].numpy()) < cfg.memorized_at}))
    return pd.concat(rows, ignore_index=True)


def redundancy(ctx: Context, table: pd.DataFrame) -> pd.DataFrame:
    """Per training image: redundancy_perturb, redundancy_zlib and the two low-redundancy flags."""
    n = len(prefix_positions(ctx.model, ctx.prefix))
    base = ctx.train_scores
    rnd = table[table["mode"] == ("random" if "random" in ctx.cfg.modes else ctx.cfg.modes[0])]
    changed_IxM = rnd.groupby(["image_id", "m"], sort=False)["changed"].any().unstack("m").sort_index(axis=1)
    changed_IxM = changed_IxM.reindex(base["image_id"])
    ms = changed_IxM.columns.to_numpy()
    first_change = changed_IxM.to_numpy().argmax(1)
    never = ~changed_IxM.to_numpy().any(1)
    robust = np.where(never, ms[-1], np.where(first_change == 0, 0, ms[np.maximum(first_change - 1, 0)]))
    zlib_red = 1.0 - compressed_ratio(ctx.train_tokens.cpu().numpy())
    return pd.DataFrame({"image_id": base["image_id"], "copies": base["copies"], "edit_score": base["edit_score"],
                         "memorized": base["memorized"], "redundancy_perturb": robust / n,
                         "redundancy_zlib": zlib_red, "low_perturb": ~never & (first_change == 0),
                         "low_zlib": zlib_red < np.median(zlib_red)})


def analyze(ctx: Context) -> Result:
    table = perturbation_table(ctx)
    red = redundancy(ctx, table)
    drops = []
    for (mode, m, mem), g in table.groupby(["mode", "m", "memorized"], sort=True):
        mean, lo, hi = mean_ci(g["drop"].to_numpy(), ctx.cfg, ctx.rng(2000 + int(m) + 7 * int(mem)))
        drops.append({"mode": mode, "m": int(m), "memorized": bool(mem), "n": len(g), "drop": mean, "drop_lo": lo,
                      "drop_hi": hi, "changed": float(g["changed"].mean())})
    drops = pd.DataFrame(drops)
    mem = red["memorized"].to_numpy()
    shares = {}
    for k, col in enumerate(("low_perturb", "low_zlib")):
        x = red.loc[mem, col].to_numpy().astype(float)
        share, lo, hi = mean_ci(x, ctx.cfg, ctx.rng(2500 + k))
        shares[col] = {"share_of_memorized": share, "lo": lo, "hi": hi, "n_memorized": int(mem.sum()),
                       "share_of_others": float(red.loc[~mem, col].mean()) if (~mem).any() else float("nan")}
    summary = {"prefix_tokens": len(prefix_positions(ctx.model, ctx.prefix)), "low_redundancy": shares,
               "drop_at_m1": {f"{r.mode}, {'memorized' if r.memorized else 'not memorized'}":
                              {"drop": r.drop, "lo": r.drop_lo, "hi": r.drop_hi, "n": r.n}
                              for r in drops[drops["m"] == drops["m"].min()].itertuples()}}
    return Result(tables={"perturb_drops": drops, "perturb_images": table, "redundancy": red},
                  figures={"perturb": _figure(drops, red)}, summary=summary)


def _figure(drops: pd.DataFrame, red: pd.DataFrame):
    from memlab.io import legend_outside, new_figure

    fig, (a, b) = new_figure((10.5, 3.8), 1, 2)
    for (mode, mem), g in drops.groupby(["mode", "memorized"]):
        a.errorbar(g["m"], g["drop"], yerr=[g["drop"] - g["drop_lo"], g["drop_hi"] - g["drop"]], marker="o", ms=3,
                   capsize=2, ls="-" if mem else "--", label=f"{mode}, {'memorized' if mem else 'not memorized'}")
    a.set(xscale="log", xlabel="prefix tokens perturbed, m", ylabel="drop of the memorization score",
          title="prefix perturbation")
    ms = sorted(drops["m"].unique())
    a.set_xticks(ms, [str(m) for m in ms])
    a.minorticks_off()
    legend_outside(a)
    for i, col in enumerate(("low_perturb", "low_zlib")):
        for j, mem in enumerate((True, False)):
            sel = red["memorized"] == mem
            v = red.loc[sel, col].mean() if sel.any() else np.nan
            b.bar(i + 0.35 * j, v, width=0.35, color=f"C{j}", label=("memorized" if mem else "not memorized")
                  if i == 0 else None)
    b.set_xticks([0.17, 1.17], ["changes at the\nsmallest m", "zlib redundancy\nbelow median"])
    b.set(ylabel="share that is low-redundancy", ylim=(0, 1), title="low-redundancy images")
    legend_outside(b)
    return fig

