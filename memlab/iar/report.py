"""Figures for localization, extraction and ablation. Each `*_figure` builds a Figure on an Agg canvas
(memlab.io.new_figure, no pyplot); each `plot_*` writes it as PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from memlab.io import legend_outside, new_figure, save_figure, shifted


def unitmem_figure(per_block: pd.DataFrame, per_scale_block: pd.DataFrame, title: str = ""):
    """Heat-map of mean UnitMem per (scale, block) when there are several scales, bars per block
    otherwise; beside it, the share of the global top-k% units in each block."""
    fig, (ax0, ax1) = new_figure((9.5, 3.6), 1, 2)
    scales = sorted(per_scale_block["scale"].unique())
    if len(scales) > 1:
        grid = per_scale_block.pivot(index="scale", columns="block", values="mean_score")
        im = ax0.imshow(grid.to_numpy(), aspect="auto", cmap="viridis", origin="lower")
        ax0.set_yticks(range(grid.shape[0]), grid.index)
        ax0.set(ylabel="scale (coarse -> fine)", title="mean UnitMem per scale and block")
        fig.colorbar(im, ax=ax0, label="mean UnitMem")
    else:
        ax0.bar(range(len(per_block)), per_block["mean_score"], color="tab:blue")
        ax0.set(ylabel="mean UnitMem", title="mean UnitMem per block")
    ax1.bar(range(len(per_block)), per_block["top_share"], color="tab:red")
    ax1.set(ylabel="share of the top-k% units", title="where the most memorizing units are")
    for ax in (ax0, ax1):
        ax.set_xticks(range(len(per_block)), per_block["block"])
        ax.set_xlabel("block")
    fig.suptitle(title or "UnitMem per block")
    return fig


def plot_unitmem(per_block: pd.DataFrame, per_scale_block: pd.DataFrame, path: Path, title: str = "") -> None:
    save_figure(unitmem_figure(per_block, per_scale_block, title), path)


def extraction_figure(table: pd.DataFrame, heldout_sim: np.ndarray, threshold: float,
                      duplicated_ids: set | None = None):
    """Pixel similarity of candidates (by rank) against the held-out distribution and the threshold."""
    fig, (ax0, ax1) = new_figure((10.5, 3.6), 1, 2)
    dup = table["image_id"].isin(duplicated_ids or set()).to_numpy()
    ax0.scatter(table["rank"][~dup], table["pixel_sim"][~dup], s=12, label="candidate")
    if dup.any():
        ax0.scatter(table["rank"][dup], table["pixel_sim"][dup], s=22, marker="D", color="tab:red",
                    label="planted duplicate")
    ax0.axhline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:.3f} (extracted above)")
    ax0.set(xlabel="candidate rank (teacher-forced accuracy)", ylabel="pixel similarity 1 - RMSE",
            title="candidates by rank")
    legend_outside(ax0)
    bins = np.linspace(min(heldout_sim.min(), table["pixel_sim"].min()), 1.0, 30)
    ax1.hist(heldout_sim, bins=bins, alpha=0.5, density=True, label="held-out images")
    ax1.hist(table["pixel_sim"], bins=bins, density=True, histtype="step", lw=1.5, label="training candidates")
    ax1.axvline(threshold, color="k", ls="--", lw=1, label="threshold")
    ax1.set(xlabel="pixel similarity 1 - RMSE", ylabel="density", title="similarity of generations")
    legend_outside(ax1)
    fig.suptitle("extraction: greedy continuations compared with their training images")
    return fig


def plot_extraction(table: pd.DataFrame, heldout_sim: np.ndarray, threshold: float, path: Path,
                    duplicated_ids: set | None = None) -> None:
    save_figure(extraction_figure(table, heldout_sim, threshold, duplicated_ids), path)


# colour, line style, x offset in points: counts that coincide (often all 0 extracted) stay visible side by side
_CONDITIONS = {"top": ("tab:red", "o-", -3), "random": ("tab:gray", "s--", 0), "bottom": ("tab:blue", "^:", 3)}


def ablation_figure(df: pd.DataFrame, factor: float):
    """Extracted count, Frechet distance and held-out NLL against k for top / random / bottom edits,
    each mean +- one standard deviation over its draws; one legend for the three panels."""
    # imported here: importing this module (every IAR command does) needs no matplotlib
    from matplotlib.patches import Patch

    metrics = [("n_extracted", "extracted images"), ("fd", "Frechet distance"), ("nll", "held-out NLL (nats/token)")]
    fig, axes = new_figure((13, 3.6), 1, 3)
    base = df[df["condition"] == "baseline"].iloc[0]
    sweep = df[df["block"] == -1]
    for ax, (col, label) in zip(axes, metrics):
        for cond, (color, style, dx) in _CONDITIONS.items():
            g = sweep[sweep["condition"] == cond].groupby("pct")[col]
            if not len(g):
                continue
            mean, std = g.mean(), g.std(ddof=0).fillna(0.0)
            ax.plot(mean.index, mean.values, style, ms=4, mfc="none" if cond != "top" else color, color=color,
                    transform=shifted(ax, dx, mean.index, mean.values), label=f"{cond} units")
            ax.fill_between(mean.index, mean - std, mean + std, color=color, alpha=0.15, lw=0)
        ax.axhline(base[col], color="k", ls="--", lw=1, label="no edit")
        ax.set(xlabel="k (% of units edited)", ylabel=label, title=label)
    handles, _ = axes[0].get_legend_handles_labels()
    handles.append(Patch(color="tab:gray", alpha=0.3, lw=0, label="band: mean +- 1 std over draws"))
    legend_outside(axes[-1], handles=handles)
    fig.suptitle(f"ablation: incoming weights of the edited units x {factor:g}")
    return fig


def plot_ablation(df: pd.DataFrame, path: Path, factor: float) -> None:
    save_figure(ablation_figure(df, factor), path)


def block_ablation_figure(df: pd.DataFrame):
    """Extracted count and Frechet distance when only one block's top units are edited (None: no such rows)."""
    blocks = df[df["condition"] == "top-block"].sort_values("block")
    if blocks.empty:
        return None
    base = df[df["condition"] == "baseline"].iloc[0]
    fig, axes = new_figure((9.5, 3.4), 1, 2)
    for ax, col, label in zip(axes, ("n_extracted", "fd"), ("extracted images", "Frechet distance")):
        ax.bar(blocks["block"].astype(str), blocks[col], color="tab:red", label="top units of this block edited")
        ax.axhline(base[col], color="k", ls="--", lw=1, label="no edit")
        ax.set(xlabel="edited block", ylabel=label, title=label)
    legend_outside(axes[-1])
    fig.suptitle("ablation of one block at a time")
    return fig


def plot_block_ablation(df: pd.DataFrame, path: Path) -> None:
    fig = block_ablation_figure(df)
    if fig is not None:
        save_figure(fig, path)
