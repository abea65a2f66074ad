"""The over-memorization monitor (Ruan et al.): over a run's saved checkpoints, held-out NLL (nats per token)
against sample quality (Frechet distance of generated samples to the held-out images, in the tokenizer's
feature space; class consistency of the samples under the image set's classifier). An epoch is marked
"over-memorizing" when held-out NLL has risen more than `nll_rise` over its best so far while quality holds:
class consistency within `tol` of its best so far and FD within a factor 1 + tol of its best so far.

Every checkpoint is scored with the final model's tokenizer features and the same sample labels and seeds, so
the columns compare across epochs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

DIRNAME = "monitor"


def out_dir(run: str | Path) -> Path:
    return Path(run) / DIRNAME


def measure(run: str | Path, epochs: list[int], n_samples: int = 128, seed: int = 0) -> pd.DataFrame:
    """One row per epoch: epoch, train_acc, target_acc (training history), heldout_nll, fd, class_consistency."""
    from memlab.iar.batching import tokenize_all
    from memlab.iar.classifier import class_consistency, ensure_classifier
    from memlab.iar.load import load_run, load_run_data, read_run_config, run_stage
    from memlab.iar.quality import frechet_distance, generate_images, heldout_nll, image_features

    run = Path(run)
    cfg = read_run_config(run)
    _, _, heldout_x, heldout_y, _ = load_run_data(run)
    classifier, _ = ensure_classifier(run, cfg.data)  # trained (with gradients) and stored on first use
    final = load_run(run)
    heldout_tokens = tokenize_all(final, heldout_x)
    heldout_feats = image_features(final, heldout_x)
    labels = heldout_y[torch.arange(n_samples) % len(heldout_y)]
    seeds = list(range(seed, seed + n_samples))
    rows = []
    for e in epochs:  # generation and scoring run without gradients (memlab.iar.batching)
        stage = run_stage(run, checkpoint=e)
        model = final if stage.name == "final" else load_run(run, stage)
        samples = generate_images(model, labels, seeds)
        rows.append({"epoch": e, "train_acc": stage.train_acc, "target_acc": stage.target_acc,
                     "heldout_nll": heldout_nll(model, heldout_tokens, heldout_y),
                     "fd": frechet_distance(image_features(final, samples), heldout_feats, 16),
                     "class_consistency": class_consistency(classifier, samples, labels)})
    return pd.DataFrame(rows)


def mark(table: pd.DataFrame, nll_rise: float = 0.05, tol: float = 0.05) -> pd.DataFrame:
    """Adds `nll_risen`, `quality_holds` and `over_memorizing` (both) per epoch, against the best so far."""
    t = table.sort_values("epoch").reset_index(drop=True)
    best_nll = t["heldout_nll"].cummin()
    best_cc = t["class_consistency"].cummax()
    best_fd = t["fd"].cummin()
    risen = t["heldout_nll"] > best_nll + nll_rise
    holds = (t["class_consistency"] >= best_cc - tol) & (t["fd"] <= best_fd * (1 + tol))
    return t.assign(nll_risen=risen.to_numpy(), quality_holds=holds.to_numpy(),
                    over_memorizing=(risen & holds).to_numpy())


def figure(table: pd.DataFrame, title: str = ""):
    """Held-out NLL (left axis) and FD / class consistency (right panels) over epochs; marked epochs shaded."""
    from memlab.io import new_figure

    fig, axes = new_figure((10.5, 3.2), 1, 3)
    x = table["epoch"].to_numpy()
    for ax, col, name in zip(axes, ("heldout_nll", "fd", "class_consistency"),
                             ("held-out NLL (nats per token)", "Frechet distance", "class consistency")):
        ax.plot(x, table[col], "o-", ms=3)
        for e in x[table["over_memorizing"].to_numpy(bool)]:
            ax.axvspan(e * 0.93, e * 1.07, color="C3", alpha=0.25, lw=0)
        ax.set_xscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
    axes[0].set_title((title + ": " if title else "") + "shaded: NLL risen, quality holds", fontsize=8)
    return fig


def over_memorizing_epochs(table: pd.DataFrame) -> list[int]:
    return [int(e) for e in np.asarray(table.loc[table["over_memorizing"], "epoch"])]
