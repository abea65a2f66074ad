"""Figures for localization, extraction and ablation (matplotlib, Agg backend, PNG via memlab.io)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from memlab.io import pyplot, save_figure


def plot_unitmem(per_block: pd.DataFrame, per_scale_block: pd.DataFrame, path: Path, title: str = "") -> None:
    """Heat-map of mean UnitMem per (scale, block) when there are several scales, bars per block
    otherwise; beside it, the share of the global top-k% units in each block."""
    plt = pyplot()
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9.5, 3.4), layout="constrained")
    scales = sorted(per_scale_block["scale"].unique())
    if len(scales) > 1:
        grid = per_scale_block.pivot(index="scale", columns="block", values="mean_score")
        im = ax0.imshow(grid.to_numpy(), aspect="auto", cmap="viridis", origin="lower")
        ax0.set_xticks(range(grid.shape[1]), grid.columns)
        ax0.set_yticks(range(grid.shape[0]), grid.index)
        ax0.set_ylabel("scale (coarse -> fine)")
        fig.colorbar(im, ax=ax0, label="mean UnitMem")
    else:
        ax0.bar(range(len(per_block)), per_block["mean_score"], color="tab:blue")
        ax0.set_ylabel("mean UnitMem")
    ax0.set_xlabel("block")
    ax1.bar(range(len(per_block)), per_block["top_share"], color="tab:red")
    ax1.set_xlabel("block")
    for ax in (ax0, ax1):
        ax.set_xticks(range(len(per_block)), per_block["block"])
    ax1.set_ylabel("share of top-k% units")
    fig.suptitle(title or "UnitMem per block")
    save_figure(fig, path)
    plt.close(fig)


def plot_extraction(table: pd.DataFrame, heldout_sim: np.ndarray, threshold: float, path: Path,
                    duplicated_ids: set | None = None) -> None:
    """Pixel similarity of candidates (by rank) against the held-out distribution and the threshold."""
    plt = pyplot()
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3.2))
    dup = table["image_id"].isin(duplicated_ids or set()).to_numpy()
    ax0.scatter(table["rank"][~dup], table["pixel_sim"][~dup], s=12, label="candidate")
    if dup.any():
        ax0.scatter(table["rank"][dup], table["pixel_sim"][dup], s=18, color="tab:red", label="planted duplicate")
    ax0.axhline(threshold, color="k", ls="--", lw=1, label="threshold")
    ax0.set_xlabel("candidate rank (teacher-forced accuracy)")
    ax0.set_ylabel("pixel similarity 1 - RMSE")
    ax0.legend(fontsize=7)
    bins = np.linspace(min(heldout_sim.min(), table["pixel_sim"].min()), 1.0, 30)
    ax1.hist(heldout_sim, bins=bins, alpha=0.6, density=True, label="held-out")
    ax1.hist(table["pixel_sim"], bins=bins, alpha=0.6, density=True, label="training candidates")
    ax1.axvline(threshold, color="k", ls="--", lw=1)
    ax1.set_xlabel("pixel similarity")
    ax1.legend(fontsize=7)
    save_figure(fig, path)
    plt.close(fig)


def plot_ablation(df: pd.DataFrame, path: Path, factor: float) -> None:
    """Extracted count, Frechet distance and held-out NLL against k for top / random / bottom edits."""
    plt = pyplot()
    metrics = [("n_extracted", "extracted images"), ("fd", "Frechet distance"), ("nll", "held-out NLL (nats/token)")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4), layout="constrained")
    base = df[df["condition"] == "baseline"].iloc[0]
    sweep = df[df["block"] == -1]
    colors = {"top": "tab:red", "random": "tab:gray", "bottom": "tab:blue"}
    for ax, (col, label) in zip(axes, metrics):
        for cond, color in colors.items():
            g = sweep[sweep["condition"] == cond].groupby("pct")[col]
            if not len(g):
                continue
            mean, std = g.mean(), g.std(ddof=0).fillna(0.0)
            ax.plot(mean.index, mean.values, "o-", color=color, label=cond)
            ax.fill_between(mean.index, mean - std, mean + std, color=color, alpha=0.2)
        ax.axhline(base[col], color="k", ls="--", lw=1, label="no edit")
        ax.set_xlabel("k (% of units edited)")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"incoming weights x {factor:g}")
    save_figure(fig, path)
    plt.close(fig)


def plot_block_ablation(df: pd.DataFrame, path: Path) -> None:
    """Extracted count and Frechet distance when only one block's top units are edited."""
    plt = pyplot()
    blocks = df[df["condition"] == "top-block"].sort_values("block")
    if blocks.empty:
        return
    base = df[df["condition"] == "baseline"].iloc[0]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    for ax, col, label in zip(axes, ("n_extracted", "fd"), ("extracted images", "Frechet distance")):
        ax.bar(blocks["block"].astype(str), blocks[col], color="tab:red")
        ax.axhline(base[col], color="k", ls="--", lw=1, label="no edit")
        ax.set_xlabel("edited block")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7)
    save_figure(fig, path)
    plt.close(fig)
