"""Where each localizer puts memorization: the share of a method's top-k% units in each block and, from its
per-scale table (memlab.iar.localizers.scales), the share of its top-k% (unit, scale) rows at each scale.
Units tied with the last place share the remaining places evenly (the expectation under random tie
breaking: a mask that leaves most units at exactly 0 does not favour the first block by table order).

Table (tidy, one row per method and group): method, by ("block" | "scale"), group (the block or scale
index), n (units, or unit-scale rows, in the group), n_top (expected count among the top k%), share
(n_top over the top count), chance (n over all: the share a random ranking gives), top_pct."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from memlab.iar.unitmem import top_count

COLUMNS = ["method", "by", "group", "n", "n_top", "share", "chance", "top_pct"]


def top_weights(score: np.ndarray, pct: float) -> np.ndarray:
    """Per entry, its expected membership of the top pct% (top_count entries): 1 above the last place's
    score, the remaining places shared evenly among the entries tied with it, 0 below."""
    k = top_count(len(score), pct)
    kth = np.sort(score)[::-1][k - 1]
    above, tied = score > kth, score == kth
    return np.where(above, 1.0, np.where(tied, (k - above.sum()) / tied.sum(), 0.0))


def _shares(method: str, by: str, groups: np.ndarray, score: np.ndarray, pct: float) -> pd.DataFrame:
    w = top_weights(np.asarray(score, dtype=float), pct)
    frame = pd.DataFrame({"group": groups, "w": w}).groupby("group").agg(n=("w", "size"), n_top=("w", "sum"))
    frame = frame.reset_index()
    return frame.assign(method=method, by=by, share=frame["n_top"] / w.sum(), chance=frame["n"] / len(w),
                        top_pct=pct)[COLUMNS]


def where_table(units: Mapping[str, pd.DataFrame], scales: Mapping[str, pd.DataFrame] | None = None,
                top_pct: float = 10.0) -> pd.DataFrame:
    """`units`: each method's unit table (one row per unit: block, score); `scales`: per-scale tables (one row
    per unit and scale) of the methods that have one. -> the tidy table of the module docstring."""
    if not 0 < top_pct <= 100:
        raise ValueError(f"top_pct must be in (0, 100], got {top_pct}")
    parts = [_shares(m, "block", t["block"].to_numpy(), t["score"].to_numpy(), top_pct) for m, t in units.items()]
    parts += [_shares(m, "scale", t["scale"].to_numpy(), t["score"].to_numpy(), top_pct)
              for m, t in (scales or {}).items()]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)


def where_figure(table: pd.DataFrame, title: str = ""):
    """Stacked bars, one per method: the share of its top-k% in each block (and each scale, beside)."""
    from memlab.io import legend_outside, new_figure

    bys = [b for b in ("block", "scale") if (table["by"] == b).any()]
    fig, axes = new_figure((5.2 * len(bys) + 1.5, 0.4 * table["method"].nunique() + 1.8), 1, max(1, len(bys)),
                           squeeze=False)
    for ax, by in zip(axes[0], bys):
        part = table[table["by"] == by].pivot(index="method", columns="group", values="share").fillna(0.0)
        part = part.loc[[m for m in dict.fromkeys(table["method"]) if m in part.index]]
        left = np.zeros(len(part))
        for g in part.columns:
            ax.barh(range(len(part)), part[g], left=left, label=f"{by} {g}")
            left += part[g].to_numpy()
        ax.set_yticks(range(len(part)), part.index)
        ax.invert_yaxis()
        pct = table["top_pct"].iloc[0]
        ax.set(xlim=(0, 1), xlabel=f"share of the top {pct:g}%", title=f"where: by {by}")
        legend_outside(ax)
    if title:
        fig.suptitle(title)
    return fig


def plot_where(table: pd.DataFrame, path: Path, title: str = "") -> None:
    from memlab.io import save_figure

    save_figure(where_figure(table, title), path)
