"""PNG figures of a run: learning curves, and images next to their tokenizer reconstructions, greedy
continuations from a short prefix and fresh samples. Drawn on Agg figures (memlab.io.new_figure)."""

from __future__ import annotations

from pathlib import Path

import torch

from memlab.io import legend_outside, new_figure, save_figure


def curves_figure(metrics: dict):
    fig, (a, b) = new_figure((10.5, 3.6), 1, 2)
    for ax, rows, train, held, title, ylabel in (
            (a, metrics.get("tokenizer", []), "train_mse", "heldout_mse", "tokenizer reconstruction",
             "pixel MSE ([0,1] pixels, log scale)"),
            (b, metrics.get("model", []), "train_nll", "heldout_nll", "IAR model", "teacher-forced token NLL (nats)")):
        if rows:
            epochs = [r["epoch"] for r in rows]
            ax.plot(epochs, [r[train] for r in rows], "o-", ms=3, label="train")
            # dashed with open markers: the train curve stays visible where the two agree
            ax.plot(epochs, [r[held] for r in rows], "s--", ms=4, mfc="none", label="held-out")
            legend_outside(ax)
        ax.set(title=title, xlabel="epoch", ylabel=ylabel)
    a.set_yscale("log")
    fig.suptitle("training curves: stage 1 the tokenizer, stage 2 the IAR model on its frozen tokens")
    return fig


def plot_curves(metrics: dict, path: Path) -> None:
    save_figure(curves_figure(metrics), path)


@torch.no_grad()
def samples_figure(model, images_Bx3xHxW: torch.Tensor, labels_B: torch.Tensor, prefix: int):
    """Rows: training images, their reconstructions, greedy continuations from `prefix`, samples (seeds 0..B-1)."""
    tokens = model.tokenize(images_Bx3xHxW)
    rows = {"training image": images_Bx3xHxW, "tokenizer\nreconstruction": model.decode(tokens),
            f"greedy from\nprefix {prefix}": model.decode(model.continue_greedy(tokens, labels_B, prefix)),
            "sample\n(seed = column)": model.decode(model.generate(labels_B, list(range(len(labels_B)))))}
    B = len(labels_B)
    fig, axes = new_figure((1.1 * B + 1.2, 1.2 * len(rows) + 0.6), len(rows), B, squeeze=False)
    for r, (name, imgs) in enumerate(rows.items()):
        for c in range(B):
            ax = axes[r][c]
            ax.imshow(imgs[c].permute(1, 2, 0).clamp(0, 1).cpu().numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=7)
    fig.suptitle(f"{model.arch}: training images and what the model makes of them", fontsize=9)
    return fig


def plot_samples(model, images_Bx3xHxW: torch.Tensor, labels_B: torch.Tensor, prefix: int, path: Path) -> None:
    save_figure(samples_figure(model, images_Bx3xHxW, labels_B, prefix), path)
