"""Figures of a prediction: weighted losses against M/N with the crossing, and the per-t crossover."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from memlab.io import pyplot, save_figure


def plot_prediction(result: dict, path: Path) -> Path:
    plt = pyplot()

    curve = result["curve"]
    m_over_n = np.array([c["m_over_n"] for c in curve])
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax.fill_between(m_over_n, [c["loss_pmem_lo"] for c in curve], [c["loss_pmem_hi"] for c in curve],
                    alpha=0.25, color="C0", lw=0)
    ax.plot(m_over_n, [c["loss_pmem"] for c in curve], "o-", ms=3, color="C0", label=r"$\theta_{pmem}(M)$ (MC)")
    ax.axhline(result["loss_star_weighted"], color="C1", label=r"$\theta^\star$ (generalizing)")
    ax.axhline(result["loss_mem_weighted"], color="C2", ls=":", label=r"$\theta_{mem}$")
    r, (lo, hi) = result["m_star_over_n"], result["interval"]
    if np.isfinite(r):
        ax.axvline(r, color="k", lw=1, label=f"M*/N = {r:.3f}")
    if np.isfinite(lo) and np.isfinite(hi):
        ax.axvspan(lo, hi, color="k", alpha=0.08)
    for i, (name, a) in enumerate(k for k in result["approximations"].items() if not k[0].startswith("_")):
        if np.isfinite(a["m_star_over_n"]):
            ax.axvline(a["m_star_over_n"], color=f"C{3 + i}", ls="--", lw=1, label=f"{name}: {a['m_star_over_n']:.3f}")
    losses = np.array([c["loss_pmem"] for c in curve] + [result["loss_mem_weighted"]])
    if losses.min() > 0 and losses.max() / losses.min() > 30:  # templates: the gap near M = N is invisible in linear
        ax.set_yscale("log")
    ax.set_xlabel("M / N")
    ax.set_ylabel(f"weighted training loss (x0 units, {result['weighting'] if isinstance(result['weighting'], str) else 'custom'})")
    ax.set_title(f"crossover, N = {result['n_train']}, d = {result['dim']}")
    ax.legend(fontsize=7)

    per_t = result["per_t"]
    psi = np.array([p["psi"] for p in per_t])
    ratio = np.array([np.nan if p["m_star_over_n"] is None else p["m_star_over_n"] for p in per_t], dtype=float)
    ax2.semilogx(psi, ratio, "o-", ms=3)
    ax2.axhline(r, color="k", lw=1, ls=":", label="weighted M*/N")
    ax2.set_xlabel(r"signal-to-noise $\psi_t$")
    ax2.set_ylabel("M*/N at this t alone")
    ax2.set_ylim(0, 1.02)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return Path(path)
