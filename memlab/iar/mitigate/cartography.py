"""Data cartography of an IAR run (after GenDataCarto): per training image and epoch, the teacher-forced loss
and top-1 accuracy; per image a difficulty (mean loss over the first epochs) and a memorization score (forget
events: learned at one epoch, accuracy >= threshold, and not at the next); four quadrants split at the
medians; and the choice of the images that `--prune-from` removes.

The unit is the image id with planted copies folded (`pipeline.fold_duplicates`): the copies of a duplicate
are the same pixels, so they have the same scores, and pruning an id removes all its copies. "Prune P%" removes
round(P / 100 x N) of the N ids (halves round up).

Loss and accuracy are over the positions the extraction attack must produce (`model.ranking_positions` of the
default prefix, as `target_acc` in training): `loss` in nats per token.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from memlab.errors import UsageError
from memlab.io import read_parquet, write_parquet

FILE = "cartography.parquet"
FIGURE = "cartography.png"
COLUMNS = ["epoch", "image_id", "copies", "loss", "acc"]
QUADRANTS = ("easy, stable", "hard, stable", "easy, forgotten", "hard, forgotten")


def fold_ids(ids) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(image ids with copies folded, in order of first appearance; the first training row of each; copies)."""
    base = [str(i).split("#copy")[0] for i in ids]
    first: dict[str, int] = {}
    for r, b in enumerate(base):
        first.setdefault(b, r)
    counts = pd.Series(base).value_counts()
    uniq = list(first)
    return uniq, np.array([first[u] for u in uniq], dtype=np.int64), np.array([counts[u] for u in uniq], dtype=np.int64)


def epoch_records(model, tokens_NxL, labels_N, ids, epoch: int) -> pd.DataFrame:
    """One row per image id (copies folded) of the model as it is after `epoch`."""
    import torch

    from memlab.iar.batching import teacher_forced_scores

    uniq, rows, copies = fold_ids(ids)
    positions_L = model.ranking_positions(model.default_prefix())
    r = torch.as_tensor(rows)
    acc_N, ll_N = teacher_forced_scores(model, tokens_NxL[r], labels_N[r], positions_L)
    return pd.DataFrame({"epoch": np.full(len(uniq), epoch, dtype=np.int64), "image_id": uniq, "copies": copies,
                         "loss": -ll_N, "acc": acc_N})


def path(run: str | Path) -> Path:
    return Path(run) / FILE


def read_table(run: str | Path, upto: int | None = None) -> pd.DataFrame:
    """The run's table (epochs <= `upto`); an empty table when it has none yet."""
    p = path(run)
    if not p.is_file():
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(COLUMNS, ("int64", str, "int64", float, float))})
    table = read_parquet(p, what="cartography table")
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise UsageError(f"damaged cartography table {p}: missing column {missing[0]!r}")
    return table if upto is None else table[table["epoch"] <= upto].reset_index(drop=True)


def append(run: str | Path, rows: pd.DataFrame) -> pd.DataFrame:
    """Add one epoch's rows (replacing rows of that epoch and later ones, left by an interrupted run); atomic."""
    epoch = int(rows["epoch"].iloc[0])
    table = pd.concat([read_table(run, upto=epoch - 1), rows], ignore_index=True)
    write_parquet(path(run), table)
    return table


def matrix(table: pd.DataFrame, column: str) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(values E x N, image ids N in first-seen order, epochs E) of one column."""
    ids = list(dict.fromkeys(table["image_id"]))
    wide = table.pivot(index="epoch", columns="image_id", values=column)[ids]
    return wide.to_numpy(dtype=float), ids, wide.index.to_numpy()


def forget_events(acc_ExN: np.ndarray, threshold: float) -> np.ndarray:
    """Per image, the epochs e with acc[e] >= threshold and acc[e + 1] < threshold: int N."""
    learned_ExN = np.asarray(acc_ExN) >= threshold
    return (learned_ExN[:-1] & ~learned_ExN[1:]).sum(0).astype(np.int64)


def difficulty(loss_ExN: np.ndarray, first: int) -> np.ndarray:
    """Mean loss over the first `first` epochs (all of them when fewer were recorded): N."""
    return np.asarray(loss_ExN)[:first].mean(0)


def scores(table: pd.DataFrame, threshold: float, first: int) -> pd.DataFrame:
    """Per image id: copies, difficulty, memorization (forget events), last epoch's accuracy, quadrant."""
    if table.empty:
        raise UsageError("the cartography table is empty: no epoch was recorded")
    loss_ExN, ids, _ = matrix(table, "loss")
    acc_ExN, _, _ = matrix(table, "acc")
    copies = table.drop_duplicates("image_id").set_index("image_id").loc[ids, "copies"].to_numpy()
    out = pd.DataFrame({"image_id": ids, "copies": copies, "difficulty": difficulty(loss_ExN, first),
                        "memorization": forget_events(acc_ExN, threshold), "final_acc": acc_ExN[-1]})
    hard = out["difficulty"] > out["difficulty"].median()
    forgotten = out["memorization"] > out["memorization"].median()
    out["quadrant"] = [QUADRANTS[int(h) + 2 * int(f)] for h, f in zip(hard, forgotten)]
    return out


def n_pruned(n: int, pct: float) -> int:
    """round(pct / 100 x n), halves up."""
    return int(math.floor(pct / 100.0 * n + 0.5))


def select_pruned(per_image: pd.DataFrame, pct: float, by: str, seed: int = 0) -> list[str]:
    """The ids `--prune pct --by by` removes: exactly n_pruned(N, pct) of them. memorization: most forget
    events first, ties by higher difficulty; difficulty: highest first; random: a draw seeded by `seed`.
    Remaining ties go to the id's order in the table (stable)."""
    from memlab.iar.config import PRUNE_BY

    if by not in PRUNE_BY:
        raise UsageError(f"unknown --by {by!r}; allowed: {', '.join(PRUNE_BY)}")
    k = n_pruned(len(per_image), pct)
    if by == "random":
        order = np.random.default_rng(seed).permutation(len(per_image))
    elif by == "memorization":
        order = np.lexsort((-per_image["difficulty"].to_numpy(), -per_image["memorization"].to_numpy()))
    else:
        order = np.argsort(-per_image["difficulty"].to_numpy(), kind="stable")
    return [str(per_image["image_id"].iloc[i]) for i in order[:k]]


def quadrant_figure(per_image: pd.DataFrame, title: str = ""):
    """Difficulty (x) against memorization (y), median lines, planted duplicates marked; -> matplotlib Figure."""
    from memlab.io import new_figure

    fig, ax = new_figure((5.6, 4.2))
    rng = np.random.default_rng(0)  # vertical jitter only: forget-event counts are integers
    y = per_image["memorization"].to_numpy(float) + rng.uniform(-0.15, 0.15, len(per_image))
    dup = per_image["copies"].to_numpy() > 1
    ax.scatter(per_image["difficulty"][~dup], y[~dup], s=12, alpha=0.6, label="seen once")
    if dup.any():
        ax.scatter(per_image["difficulty"][dup], y[dup], s=30, marker="x", color="C3",
                   label=f"planted duplicates ({int(per_image['copies'][dup].max())} copies)")
    ax.axvline(per_image["difficulty"].median(), color="0.5", lw=0.8, ls="--")
    ax.axhline(per_image["memorization"].median(), color="0.5", lw=0.8, ls="--")
    ax.set_xlabel("difficulty: mean loss over the first epochs (nats per token)")
    ax.set_ylabel("memorization: forget events (jittered)")
    ax.set_title(title or "data cartography", fontsize=9)
    ax.legend(fontsize=7)
    return fig
