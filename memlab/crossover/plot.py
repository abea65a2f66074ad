"""Figures of a prediction: weighted losses against M/N with the crossing, and the per-t crossover.

The loss panel is always on a log y axis, for the GMM and the templates alike: the templates' gap between
theta_pmem and theta_star near M = N is invisible on a linear one, and one rule keeps figures comparable."""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import numpy as np

from memlab.io import legend_outside, new_figure, save_figure

# the closed-form approximations' M*/N: distinct colour, dash pattern and top marker each, so that one lying
# on the Monte Carlo M*/N (solid black) or on another stays visible
_APPROX_STYLES = [("C3", (0, (5, 2)), "v"), ("C4", (0, (1, 1.5)), "D"), ("C5", (0, (6, 2, 1, 2)), "s"),
                  ("C6", (0, (3, 3)), "^")]


def _weighting_name(result: dict) -> str:
    w = result["weighting"]
    return w if isinstance(w, str) else "custom"


def _title(result: dict) -> str:
    data = result.get("config", {}).get("data", {})
    parts = [f"N = {result['n_train']}", f"d = {result['dim']}"]
    if data.get("components"):
        parts.append(f"K = {data['components']}")
    name = data.get("dataset", "data")
    return textwrap.fill(f"crossover on {name} ({', '.join(parts)}), {_weighting_name(result)} weighting", 90)


def loss_panel(ax, result: dict) -> None:
    """theta_pmem(M)'s weighted training loss with its bootstrap band, theta_star, theta_mem, the crossing M*/N
    with its interval and the approximations' M*/N (x0 units, log y)."""
    curve = result["curve"]
    m_over_n = np.array([c["m_over_n"] for c in curve])
    ax.fill_between(m_over_n, [c["loss_pmem_lo"] for c in curve], [c["loss_pmem_hi"] for c in curve],
                    alpha=0.25, color="C0", lw=0, label=r"$\theta_{pmem}(M)$ 95% bootstrap band")
    ax.plot(m_over_n, [c["loss_pmem"] for c in curve], "o-", ms=3, color="C0",
            label=r"$\theta_{pmem}(M)$ (Monte Carlo)")
    ax.axhline(result["loss_star_weighted"], color="C1", label=r"$\theta^\star$ (generalizing)")
    ax.axhline(result["loss_mem_weighted"], color="C2", ls=":", lw=2, label=r"$\theta_{mem}$ (memorizing)")
    r, (lo, hi) = result["m_star_over_n"], result["interval"]
    if np.isfinite(lo) and np.isfinite(hi):
        ax.axvspan(lo, hi, color="k", alpha=0.08, lw=0, label="M*/N 95% interval")
    if np.isfinite(r):
        ax.axvline(r, color="k", lw=1.2, label=f"M*/N = {r:.3f} (Monte Carlo)")
    approx = [(k, a) for k, a in result["approximations"].items() if not k.startswith("_")]
    for (name, a), (color, dash, marker) in zip(approx, itertools.cycle(_APPROX_STYLES)):
        if np.isfinite(a["m_star_over_n"]):
            ax.axvline(a["m_star_over_n"], color=color, ls=dash, lw=1.2, marker=marker, markevery=[1], ms=5,
                       clip_on=False,
                       label=f"M*/N by {name} approximation: {a['m_star_over_n']:.3f}")
    ax.set_yscale("log")
    ax.set(xlabel="M / N", ylabel="weighted training loss (x0 units, log scale)")
    ax.set_title(f"weighted loss ({_weighting_name(result)} weighting)", pad=10)  # room for the markers on top
    legend_outside(ax)


def per_t_panel(ax, result: dict) -> None:
    """The M*/N that each noise level alone would give, beside the weighted M*/N."""
    per_t = result["per_t"]
    psi = np.array([p["psi"] for p in per_t])
    ratio = np.array([np.nan if p["m_star_over_n"] is None else p["m_star_over_n"] for p in per_t], dtype=float)
    ax.semilogx(psi, ratio, "o-", ms=3, color="C0", label="M*/N at this t alone")
    if np.isfinite(result["m_star_over_n"]):
        ax.axhline(result["m_star_over_n"], color="k", lw=1, ls=":", label="weighted M*/N")
    ax.set(xlabel=r"signal-to-noise $\psi_t$", ylabel="M*/N", ylim=(0, 1.02), title="crossover per noise level")
    legend_outside(ax)


def prediction_figure(result: dict):
    fig, (ax, ax2) = new_figure((12.5, 4.4), 1, 2)
    loss_panel(ax, result)
    per_t_panel(ax2, result)
    fig.suptitle(_title(result))
    return fig


def plot_prediction(result: dict, path: Path) -> Path:
    save_figure(prediction_figure(result), path)
    return Path(path)
