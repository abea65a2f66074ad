"""What a run trains on after the data mitigations of its config: deduplication (`--dedup`), pruning or
down-weighting the images another run's cartography names (`--prune-from RUN --prune P --by ...`), and
memorization-aware reweighting (`--reweight-below LOSS`: an image whose loss at the last epoch fell below LOSS
trains with weight `--reweight-factor` in the next one).

Weights multiply each image's share of the batch loss: loss = sum_b w_b l_b / B, so a down-weighted image
contributes less and the others keep their step size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from memlab.errors import UsageError


@dataclass
class TrainSet:
    keep: np.ndarray  # rows of the full training set that are trained on
    weights: np.ndarray | None  # per kept row; None: all 1
    info: dict = field(default_factory=dict)  # what was removed and why (metrics.json "training_set")


def select(t, images_Nx3xHxW, ids: list[str]) -> TrainSet:
    """The rows and fixed weights of config `t` (IARTrainConfig) on the full training set; every error before
    any write (a missing --prune-from run, one without cartography, one of another image set)."""
    from memlab.iar.mitigate import dedup

    n = len(ids)
    keep, info = np.arange(n), {}
    if t.dedup:
        x_NxD = images_Nx3xHxW.reshape(n, -1).numpy()
        found = dedup.groups(x_NxD, t.dedup_threshold)
        keep = dedup.keep_rows(n, found)
        info["dedup"] = {**dedup.report(ids, found, t.dedup_threshold, dedup.nearest_distances(x_NxD, ids)),
                         "removed_ids": [ids[r] for g in found for r in g[1:]]}
    weights = None
    if t.prune_from is not None:
        pruned = pruned_ids(t)
        known = {i.split("#copy")[0] for i in ids}
        unknown = [i for i in pruned if i not in known]
        if unknown:
            raise UsageError(f"--prune-from {t.prune_from}: image {unknown[0]!r} is not in this run's training set "
                             "(train on the same image set as that run)")
        hit = np.array([ids[r].split("#copy")[0] in set(pruned) for r in keep])
        if t.prune_weight == 0.0:
            keep = keep[~hit]
        else:
            weights = np.where(hit, t.prune_weight, 1.0)
        info["prune"] = {"from": t.prune_from, "pct": t.prune, "by": t.prune_by, "weight": t.prune_weight,
                         "forget_threshold": t.forget_threshold, "difficulty_epochs": t.difficulty_epochs,
                         "n_ids": len(pruned), "n_rows": int(hit.sum()), "ids": pruned}
    if t.reweight_below is not None:
        info["reweight"] = {"below": t.reweight_below, "factor": t.reweight_factor,
                            "loss": "teacher-forced NLL at the ranking positions, nats per token, last epoch"}
    return TrainSet(keep, weights, info)


def pruned_ids(t) -> list[str]:
    """The ids that --prune-from's cartography table names, under t's threshold, epochs, share, rule and seed."""
    from memlab.iar.mitigate import cartography

    src = Path(t.prune_from)
    if not src.is_dir():
        raise UsageError(f"--prune-from: run directory does not exist: {src}")
    if not cartography.path(src).is_file():
        raise UsageError(f"--prune-from {src} has no {cartography.FILE}; train that run with --cartography")
    per_image = cartography.scores(cartography.read_table(src), t.forget_threshold, t.difficulty_epochs)
    return cartography.select_pruned(per_image, t.prune, t.prune_by, t.seed)


def remap(rows, keep: np.ndarray) -> np.ndarray:
    """Rows of the full training set -> their rows in the kept set (rows not kept are dropped)."""
    where = {int(r): i for i, r in enumerate(keep)}
    return np.array([where[int(r)] for r in rows if int(r) in where], dtype=np.int64)


def reweighted(fixed: np.ndarray | None, ids: list[str], table, below: float, factor: float) -> np.ndarray:
    """Per row: the fixed weight, times `factor` where the image's loss in the table's last epoch < `below`."""
    last = table[table["epoch"] == table["epoch"].max()].set_index("image_id")["loss"]
    low = np.array([last.get(i.split("#copy")[0], np.inf) < below for i in ids])
    base = np.ones(len(ids)) if fixed is None else fixed
    return np.where(low, base * factor, base)


def weighted_loss(module, tokens_BxL, labels_B, generator, w_B):
    """The model's training loss with per-image weights: sum_b w_b l_b / B. Images of one weight go through
    `module.training_loss` together (its mean over equal-length sequences is the mean of per-image means), so
    the usual case, all weights 1, is the plain loss."""
    import torch

    if w_B is None:
        return module.training_loss(tokens_BxL, labels_B, generator)
    w_B = torch.as_tensor(w_B, dtype=torch.float32)
    if bool((w_B == 1).all()):
        return module.training_loss(tokens_BxL, labels_B, generator)
    total = 0.0
    for w in torch.unique(w_B):
        m_B = w_B == w
        if float(w) > 0:
            total = total + float(w) * int(m_B.sum()) * module.training_loss(tokens_BxL[m_B], labels_B[m_B], generator)
    if not torch.is_tensor(total):  # every weight 0: a zero loss that still has a graph
        return 0.0 * module.training_loss(tokens_BxL, labels_B, generator)
    return total / len(w_B)
