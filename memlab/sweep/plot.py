"""Phase-diagram figures (matplotlib, Agg): each panel draws into a given Axes, `plot_sweep` puts all four in
one PNG and `save_panels` writes each as its own PNG.

- ratio: memorization ratio against M/N per data configuration, observed transition and predicted M*/N;
- losses: trained models' train/test loss (x0 units, at one t) against M/N beside the reference models;
- phase: training-set size N against M/N coloured by the mean ratio, predicted M*/N curve drawn over it;
- agreement: predicted against observed transition for every data configuration, with the diagonal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from memlab.io import pyplot, save_figure
from memlab.sweep.phase import BAD_STATUS, losses_at, reference_losses_at

plt = pyplot()


def _label(rec: dict) -> str:
    d = f"d={rec['dim']:g} " if rec["dataset"] == "gmm" and rec.get("dim") else ""
    return f"{rec['dataset']} {d}K={rec['components']} N={rec['n_train']}"


def _weighting(summary: list[dict]) -> str:
    names = {r["predicted"].get("weighting") for r in summary} - {None}
    return f", {'/'.join(sorted(names))} weighting" if names else ""


def _good(table: pd.DataFrame) -> pd.DataFrame:
    return table[~table["status"].isin(BAD_STATUS)]


def ratio_panel(ax, table: pd.DataFrame, summary: list[dict]) -> None:
    colors = plt.cm.viridis(np.linspace(0, 0.85, max(1, len(summary))))
    for rec, c in zip(summary, colors):
        sizes = rec["observed"]["sizes"]
        x = [s["m_over_n"] for s in sizes]
        y = [s["mean_ratio"] for s in sizes]
        err = [[s["mean_ratio"] - s["min_ratio"] for s in sizes], [s["max_ratio"] - s["mean_ratio"] for s in sizes]]
        ax.errorbar(x, y, yerr=err, marker="o", ms=4, capsize=2, color=c, label=_label(rec))
        obs = rec["observed"]
        if obs.get("m_over_n") is not None:
            lo, hi = obs["interval"]
            ax.axvspan(lo if lo is not None else min(x), hi if hi is not None else max(x), color=c, alpha=0.12)
        pred = rec["predicted"]
        if pred.get("m_over_n") is not None:
            ax.axvline(pred["m_over_n"], color=c, ls="--", lw=1.2)
            if None not in pred["interval"]:
                ax.axvspan(*pred["interval"], facecolor="none", edgecolor=c, hatch="///", lw=0, alpha=0.5)
    ax.axhline(0.5, color="gray", lw=0.6, ls=":")
    ax.set(xlabel="M / N", ylabel="memorization ratio", ylim=(-0.03, 1.03),
           title=f"ratio vs size (dashed, hatched: predicted M*/N{_weighting(summary)}; band: observed 95%)")
    ax.legend(fontsize=7)


def losses_panel(ax, table: pd.DataFrame, summary: list[dict], predictions: dict, t: float = 0.5) -> None:
    """One data configuration (the first of the summary): trained losses and the three references at t."""
    if not summary:
        return
    rec = summary[0]
    key = rec["data_key"]
    lo = losses_at(table[table["data_key"] == key], t)
    if len(lo):
        ax.plot(lo["m_over_n"], lo["train_loss"], "o-", ms=4, label="trained: train loss")
        ax.plot(lo["m_over_n"], lo["test_loss"], "s-", ms=4, label="trained: test loss")
    ref = reference_losses_at(predictions.get(key) or {}, t, rec["n_train"])
    t_used = lo["t"].iloc[0] if len(lo) else t
    if ref:
        t_used = ref["t"]
        ax.axhline(ref["loss_star"], color="C2", ls="--", label="theta_star (generalizing)")
        ax.axhline(ref["loss_mem"], color="C3", ls="--", label="theta_mem (memorizing)")
        if ref["loss_pmem"] is not None:
            ax.plot(ref["pmem_m_over_n"], ref["loss_pmem"], color="C4", ls=":", label="theta_pmem(M)")
    ax.set(xlabel="M / N", ylabel="x0 loss per sample", title=f"losses at t={t_used:.3f} ({_label(rec)})")
    ax.legend(fontsize=7)


def phase_panel(ax, table: pd.DataFrame, summary: list[dict]) -> None:
    """N on the x axis, M/N on the y axis; the first family of data configurations that differ only in N."""
    if not summary:
        return
    fam = ("dataset", "dim", "components", "variance", "data_seed", "model")
    head = summary[0]
    recs = [r for r in summary if all(r[k] == head[k] for k in fam)]
    keys = {r["data_key"] for r in recs}
    g = _good(table[table["data_key"].isin(keys)])
    mean = g.groupby(["n_train", "size"], as_index=False)[["m_over_n", "memorization_ratio"]].mean()
    sc = ax.scatter(mean["n_train"], mean["m_over_n"], c=mean["memorization_ratio"], cmap="coolwarm", vmin=0, vmax=1,
                    marker="s", s=90, edgecolors="none")
    plt.colorbar(sc, ax=ax, label="memorization ratio")
    recs = sorted(recs, key=lambda r: r["n_train"])
    n = [r["n_train"] for r in recs]
    p = [r["predicted"]["m_over_n"] for r in recs]
    if any(v is not None for v in p):
        pe = [r["predicted"]["interval"] for r in recs]
        y = np.array([np.nan if v is None else v for v in p], float)
        lo = np.array([np.nan if e[0] is None else e[0] for e in pe], float)
        hi = np.array([np.nan if e[1] is None else e[1] for e in pe], float)
        ax.plot(n, y, "ko-", lw=1.5, ms=4, label=f"predicted M*/N{_weighting(recs)}")
        ax.fill_between(n, lo, hi, color="k", alpha=0.15, lw=0)
    obs = [(r["n_train"], r["observed"]["m_over_n"]) for r in recs if r["observed"].get("m_over_n") is not None]
    if obs:
        ax.plot(*zip(*obs), "kx", ms=8, mew=2, label="observed (ratio = 0.5)")
    if len(set(n)) > 1:
        ax.set_xscale("log")
        ax.set_xticks(sorted(set(n)), [str(v) for v in sorted(set(n))])
        ax.minorticks_off()
    ax.set(xlabel="training-set size N", ylabel="M / N", title=f"phase diagram ({head['dataset']}, {head['model']})")
    ax.legend(fontsize=7)


def agreement_panel(ax, summary: list[dict]) -> None:
    pts = [(r["predicted"], r["observed"]) for r in summary
           if r["predicted"].get("m_over_n") is not None and r["observed"].get("m_over_n") is not None]
    for pred, obs in pts:
        px, oy = pred["m_over_n"], obs["m_over_n"]
        xe = [[px - pred["interval"][0] if pred["interval"][0] is not None else 0],
              [pred["interval"][1] - px if pred["interval"][1] is not None else 0]]
        ye = [[oy - obs["interval"][0] if obs["interval"][0] is not None else 0],
              [obs["interval"][1] - oy if obs["interval"][1] is not None else 0]]
        ax.errorbar([px], [oy], xerr=xe, yerr=ye, fmt="o", ms=5, capsize=2)
    vals = [v for p, o in pts for v in (p["m_over_n"], o["m_over_n"])] or [0.0, 1.0]
    lo, hi = 0.0, max(1.0, max(vals) * 1.1)
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="observed = predicted")
    ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel=f"predicted M*/N{_weighting(summary)}", ylabel="observed transition M/N",
           title=f"predicted vs observed ({len(pts)} of {len(summary)} configurations cross inside the grid)")
    ax.legend(fontsize=7)


def plot_sweep(table: pd.DataFrame, summary: list[dict], predictions: dict, out: Path, t: float = 0.5) -> Path:
    fig, axes = plt.subplots(2, 2, figsize=(13, 10))
    ratio_panel(axes[0, 0], table, summary)
    losses_panel(axes[0, 1], table, summary, predictions, t)
    phase_panel(axes[1, 0], table, summary)
    agreement_panel(axes[1, 1], summary)
    fig.tight_layout()
    save_figure(fig, Path(out))
    plt.close(fig)
    return Path(out)


def save_panels(table: pd.DataFrame, summary: list[dict], predictions: dict, out_dir: Path,
                t: float = 0.5, prefix: str = "") -> list[Path]:
    """Each panel as its own PNG under out_dir: {prefix}ratio.png, losses.png, phase.png, agreement.png."""
    draw = {
        "ratio": lambda ax: ratio_panel(ax, table, summary),
        "losses": lambda ax: losses_panel(ax, table, summary, predictions, t),
        "phase": lambda ax: phase_panel(ax, table, summary),
        "agreement": lambda ax: agreement_panel(ax, summary),
    }
    paths = []
    for name, fn in draw.items():
        fig, ax = plt.subplots(figsize=(6.5, 5))
        fn(ax)
        fig.tight_layout()
        path = Path(out_dir) / f"{prefix}{name}.png"
        save_figure(fig, path)
        plt.close(fig)
        paths.append(path)
    return paths
