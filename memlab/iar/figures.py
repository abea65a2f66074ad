"""PNG figures of a run: learning curves, and images next to their tokenizer reconstructions, greedy
continuations from a short prefix and fresh samples. Matplotlib with the Agg backend."""

from __future__ import annotations

from pathlib import Path

import torch

from memlab.io import pyplot, save_figure


def plot_curves(metrics: dict, path: Path) -> None:
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    tok = metrics.get("tokenizer", [])
    if tok:
        a.plot([r["epoch"] for r in tok], [r["train_mse"] for r in tok], label="train")
        a.plot([r["epoch"] for r in tok], [r["heldout_mse"] for r in tok], label="held-out")
        a.legend()
    a.set(title="tokenizer reconstruction", xlabel="epoch", ylabel="pixel MSE ([0,1] pixels)", yscale="log")
    mod = metrics.get("model", [])
    if mod:
        b.plot([r["epoch"] for r in mod], [r["train_nll"] for r in mod], label="train")
        b.plot([r["epoch"] for r in mod], [r["heldout_nll"] for r in mod], label="held-out")
        b.legend()
    b.set(title="IAR model", xlabel="epoch", ylabel="teacher-forced token NLL (nats)")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


@torch.no_grad()
def plot_samples(model, images_Bx3xHxW: torch.Tensor, labels_B: torch.Tensor, prefix: int, path: Path) -> None:
    """Rows: training images, their reconstructions, greedy continuations from `prefix`, samples (seeds 0..B-1)."""
    plt = pyplot()
    tokens = model.tokenize(images_Bx3xHxW)
    rows = {"training image": images_Bx3xHxW, "tokenizer": model.decode(tokens),
            f"greedy from prefix {prefix}": model.decode(model.continue_greedy(tokens, labels_B, prefix)),
            "sample": model.decode(model.generate(labels_B, list(range(len(labels_B)))))}
    B = len(labels_B)
    fig, axes = plt.subplots(len(rows), B, figsize=(1.1 * B, 1.2 * len(rows)), squeeze=False)
    for r, (name, imgs) in enumerate(rows.items()):
        for c in range(B):
            ax = axes[r][c]
            ax.imshow(imgs[c].permute(1, 2, 0).clamp(0, 1).cpu().numpy(), interpolation="nearest")
            ax.set_xticks([]); ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
