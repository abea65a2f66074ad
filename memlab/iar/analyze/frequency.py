"""Duplication frequency: the memorization score against the number of copies of an image in the training set
(best with the graded-duplication image set, `--graded 1,2,4,8,16`).

Split by "memorized at one copy" (Zhang et al.): with `--reference RUN`, a run of the same images in which
they have other copy counts (the graded groups moved with `--graded-start`), each image seen once there is
called memorized at one copy when its score there reaches `memorized_at`, and this run's scores of those images
are set against their one-copy scores (the gain from the copies). And when duplicated data is memorized first:
the teacher-forced top-1 accuracy of each copy group at every saved checkpoint of the run, and the first epoch
at which the group's mean reaches the run's memorized threshold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from memlab.errors import UsageError
from memlab.iar.analyze.context import Context, Result, mean_ci
from memlab.iar.analyze.scores import memorization_scores
from memlab.iar.batching import teacher_forced_scores, tokenize_all
from memlab.iar.config import MEMORIZED_ACC


def reference_scores(ctx: Context) -> pd.DataFrame | None:
    """Per image of this run seen once in the reference: ref_score and memorized_at_one; None without one."""
    if ctx.reference is None:
        return None
    model, data = ctx.reference
    once = np.asarray(data.copies) == 1
    index = {str(i): r for r, i in enumerate(data.train_ids)}
    ids = [i for i in ctx.data.train_ids if str(i) in index and once[index[str(i)]]]
    if not ids:
        raise UsageError("--reference shares no image seen once with this run: it must be a run of the same image "
                         "set (same --seed and --data) with the graded groups elsewhere")
    rows = np.array([index[str(i)] for i in ids])
    tokens = tokenize_all(model, data.train_images[rows], ctx.cfg.batch_size)
    scores, _ = memorization_scores(model, tokens, data.train_labels[rows], ctx.prefix, ctx.cfg.batch_size)
    return pd.DataFrame({"image_id": ids, "ref_score": scores["edit_score"].to_numpy(),
                         "memorized_at_one": scores["edit_score"].to_numpy() >= ctx.cfg.memorized_at})


def copies_table(ctx: Context, images: pd.DataFrame) -> pd.DataFrame:
    rows = []
    splits = [("all", np.ones(len(images), bool))]
    if "memorized_at_one" in images:
        known = images["memorized_at_one"].notna().to_numpy()
        mem1 = images["memorized_at_one"].fillna(False).astype(bool).to_numpy()
        splits += [("memorized at one copy", known & mem1), ("not memorized at one copy", known & ~mem1)]
    for c in sorted(images["copies"].unique()):
        at_c = images["copies"].to_numpy() == c
        for k, (split, sel) in enumerate(splits):
            g = images[at_c & sel]
            if g.empty:
                continue
            mean, lo, hi = mean_ci(g["edit_score"], ctx.cfg, ctx.rng(4000 + 10 * int(c) + k))
            row = {"copies": int(c), "split": split, "n": len(g), "score": mean, "score_lo": lo, "score_hi": hi,
                   "memorized": float(g["memorized"].mean())}
            if split != "all":
                gain = (g["edit_score"] - g["ref_score"]).to_numpy()
                row["ref_score"] = float(g["ref_score"].mean())
                row["gain"], row["gain_lo"], row["gain_hi"] = mean_ci(gain, ctx.cfg, ctx.rng(5000 + 10 * int(c) + k))
            rows.append(row)
    return pd.DataFrame(rows)


def onset_table(ctx: Context, run: Path | None) -> pd.DataFrame:
    """Mean teacher-forced top-1 accuracy (ranking positions of the prefix) of each copy group at every saved
    checkpoint of `run` and at its final weights."""
    from memlab.iar.load import load_run, run_stage
    from memlab.iar.stages import saved_epochs

    if run is None:
        return pd.DataFrame(columns=["epoch", "copies", "accuracy"])
    copies = np.asarray(ctx.data.copies)
    stages = [run_stage(run, e) for e in saved_epochs(run)]
    try:
        stages.append(run_stage(run))
    except UsageError:  # an unfinished run has no final stage
        pass
    rows = []
    for st in stages:
        model = load_run(run, st if st.name != "final" else None)
        acc, _ = teacher_forced_scores(model, ctx.train_tokens, ctx.data.train_labels,
                                       model.ranking_positions(ctx.prefix).cpu(), ctx.cfg.batch_size)
        rows += [{"epoch": st.epoch, "copies": int(c), "accuracy": float(acc[copies == c].mean())}
                 for c in np.unique(copies)]
    return pd.DataFrame(rows, columns=["epoch", "copies", "accuracy"])  # no stage (an external model): no rows


def analyze(ctx: Context) -> Result:
    images = ctx.train_scores[["image_id", "copies", "edit_score", "token_match", "memorized"]]
    ref = reference_scores(ctx)
    if ref is not None:
        images = images.merge(ref, on="image_id", how="left")
    table = copies_table(ctx, images)
    onset = onset_table(ctx, ctx.run)
    first = {}
    for c, g in onset.groupby("copies"):
        g = g.sort_values("epoch")
        hit = g.loc[g["accuracy"] >= MEMORIZED_ACC, "epoch"]
        first[int(c)] = int(hit.iloc[0]) if len(hit) else None
    summary = {"by_copies": {f"{r['copies']} {r['split']}": {k: r[k] for k in ("n", "score", "score_lo", "score_hi",
                                                                                 "memorized")}
                             | ({k: r[k] for k in ("gain", "gain_lo", "gain_hi")} if r["split"] != "all" else {})
                             for r in table.to_dict("records")},
               "reference": ref is not None, "first_epoch_memorized": first, "memorized_acc": MEMORIZED_ACC}
    return Result(tables={"frequency": table, "frequency_images": images, "frequency_onset": onset},
                  figures={"frequency": _figure(table, onset)}, summary=summary)


def _figure(table: pd.DataFrame, onset: pd.DataFrame):
    from memlab.io import legend_outside, new_figure

    fig, (a, b) = new_figure((10.5, 3.8), 1, 2)
    for k, (split, g) in enumerate(table.groupby("split", sort=False)):
        a.errorbar(g["copies"], g["score"], yerr=[g["score"] - g["score_lo"], g["score_hi"] - g["score"]],
                   marker="o", ms=3, capsize=2, color=f"C{k}", label=split)
    a.set(xscale="log", xlabel="copies in the training set", ylabel="memorization score", ylim=(-0.02, 1.02),
          title="score against copies")
    copies = sorted(table["copies"].unique())
    a.set_xticks(copies, [str(c) for c in copies])
    a.minorticks_off()
    legend_outside(a)
    for k, (c, g) in enumerate(onset.groupby("copies")):
        b.plot(g["epoch"], g["accuracy"], "o-", ms=3, color=f"C{k}", label=f"{c} copies")
    if not onset.empty:
        b.axhline(MEMORIZED_ACC, color="k", lw=0.7, ls=":")
        legend_outside(b)
    b.set(xscale="log", xlabel="epoch (saved checkpoints)", ylabel="teacher-forced top-1 accuracy",
          title="which copies are memorized first")
    return fig
