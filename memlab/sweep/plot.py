"""Phase-diagram figures: each panel draws into a given Axes; `sweep_figure` puts all four in one Figure and
`panel_figures` gives each its own; `plot_sweep` and `save_panels` write them as PNG.

- ratio: memorization ratio against M/N per data configuration, observed transition and predicted M*/N;
- losses: trained models' train/test loss (x0 units, at one t) against M/N beside the reference models;
- phase: training-set size N against M/N coloured by the mean ratio, predicted M*/N curve drawn over it;
- agreement: predicted against observed transition for every data configuration, with the diagonal.

Every figure names the prediction's weighting in its title, keeps its legends outside the axes, and says
at the bottom which configurations had not converged (sweep.table.convergence_note), or how little the
ratio still moved when all had."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from memlab.io import legend_outside, new_figure, save_figure, shifted
from memlab.sweep.phase import BAD_STATUS, losses_at, reference_losses_at
from memlab.sweep.table import convergence_line, data_label, weighting_name

_MARKERS = "osD^vP*X"


def _label(rec: dict) -> str:
    return f"{data_label(rec)} N={rec['n_train']}"


def _good(table: pd.DataFrame) -> pd.DataFrame:
    return table[~table["status"].isin(BAD_STATUS)]


def _styles(summary: list[dict]) -> dict[str, tuple]:
    """data key -> (colour, marker, x offset in points): the same in every panel; the offsets keep the
    error bars of configurations that share an M/N side by side instead of on top of each other."""
    n = max(1, len(summary))
    colors = matplotlib.colormaps["viridis"](np.linspace(0, 0.85, n))
    return {r["data_key"]: (colors[i], _MARKERS[i % len(_MARKERS)], 4.0 * (i - (n - 1) / 2))
            for i, r in enumerate(summary)}


def _wrap(text: str, width: int = 60) -> str:
    return textwrap.fill(text, width)


def _bars(values, intervals) -> list[list[float]]:
    """Error-bar lengths [below, above] of points with [lo, hi] intervals (0 on an open, None, side)."""
    return [[v - iv[0] if iv[0] is not None else 0.0 for v, iv in zip(values, intervals)],
            [iv[1] - v if iv[1] is not None else 0.0 for v, iv in zip(values, intervals)]]


def ratio_panel(ax, table: pd.DataFrame, summary: list[dict]) -> None:
    styles = _styles(summary)
    for rec in summary:
        c, marker, dx = styles[rec["data_key"]]
        sizes = rec["observed"]["sizes"]
        x = [s["m_over_n"] for s in sizes]
        y = [s["mean_ratio"] for s in sizes]
        err = [[s["mean_ratio"] - s["min_ratio"] for s in sizes], [s["max_ratio"] - s["mean_ratio"] for s in sizes]]
        ax.errorbar(x, y, yerr=err, marker=marker, ms=4, capsize=2, color=c, transform=shifted(ax, dx, x, y),
                    label=f"{_label(rec)}: mean over seeds, bars min-max")
        obs = rec["observed"]
        if obs.get("m_over_n") is not None:
            lo, hi = obs["interval"]
            ax.axvspan(lo if lo is not None else min(x), hi if hi is not None else max(x), color=c, alpha=0.12, lw=0)
        pred = rec["predicted"]
        if pred.get("m_over_n") is not None:
            # a vertical line (x in data, y in axes units) moved by the configuration's offset, like its bars
            ax.plot([pred["m_over_n"]] * 2, [0, 1], color=c, ls="--", lw=1.2,
                    transform=shifted(ax, dx, base=ax.get_xaxis_transform()))
            if None not in pred["interval"]:
                ax.axvspan(*pred["interval"], facecolor="none", edgecolor=c, hatch="///", lw=0, alpha=0.5)
    ax.axhline(0.5, color="gray", lw=0.8, ls=":", label="ratio = 0.5 (the transition level)")
    handles, _ = ax.get_legend_handles_labels()
    handles += [Line2D([], [], color="gray", ls="--", label="predicted M*/N (colour of its configuration)"),
                Patch(facecolor="none", edgecolor="gray", hatch="///", label="predicted M*/N, 95% interval"),
                Patch(color="gray", alpha=0.25, lw=0, label="observed transition, 95% interval")]
    ax.set(xlabel="M / N", ylabel="memorization ratio", ylim=(-0.03, 1.03),
           title=_wrap(f"memorization ratio vs model size, predicted under {weighting_name(summary)} weighting"))
    legend_outside(ax, handles=handles)


def losses_panel(ax, table: pd.DataFrame, summary: list[dict], predictions: dict, t: float = 0.5) -> None:
    """One data configuration (the first of the summary): trained losses and the three references at t."""
    if not summary:
        return
    rec = summary[0]
    key = rec["data_key"]
    lo = losses_at(table[table["data_key"] == key], t)
    if len(lo):
        ax.plot(lo["m_over_n"], lo["train_loss"], "o-", ms=4, color="C0", label="trained: train loss (mean over seeds)")
        ax.plot(lo["m_over_n"], lo["test_loss"], "s--", ms=5, mfc="none", color="C1",
                label="trained: test loss (mean over seeds)")
    ref = reference_losses_at(predictions.get(key) or {}, t, rec["n_train"])
    t_used = lo["t"].iloc[0] if len(lo) else t
    if ref:
        t_used = ref["t"]
        ax.axhline(ref["loss_star"], color="C2", ls="--", label=r"$\theta^\star$ (generalizing)")
        ax.axhline(ref["loss_mem"], color="C3", ls="-.", label=r"$\theta_{mem}$ (memorizing)")
        if ref["loss_pmem"] is not None:
            ax.plot(ref["pmem_m_over_n"], ref["loss_pmem"], color="C4", ls=":", lw=2, label=r"$\theta_{pmem}(M)$")
    ax.set(xlabel="M / N", ylabel="x0 loss per sample", title=_wrap(f"losses at t = {t_used:.3f}, {_label(rec)}"))
    legend_outside(ax)


def phase_panel(ax, table: pd.DataFrame, summary: list[dict]) -> None:
    """N on the x axis, M/N on the y axis; the first family of data configurations that differ only in N."""
    if not summary:
        return
    fam = ("dataset", "dim", "components", "variance", "data_seed", "model")
    head = summary[0]
    recs = sorted([r for r in summary if all(r[k] == head[k] for k in fam)], key=lambda r: r["n_train"])
    g = _good(table[table["data_key"].isin({r["data_key"] for r in recs})])
    mean = g.groupby(["n_train", "size"], as_index=False)[["m_over_n", "memorization_ratio"]].mean()
    sc = ax.scatter(mean["n_train"], mean["m_over_n"], c=mean["memorization_ratio"], cmap="coolwarm", vmin=0, vmax=1,
                    marker="s", s=90, edgecolors="none", label="trained models (colour: mean memorization ratio)")
    ax.figure.colorbar(sc, ax=ax, location="bottom", shrink=0.8, label="memorization ratio (mean over seeds)")
    n = [r["n_train"] for r in recs]
    p = [r["predicted"]["m_over_n"] for r in recs]
    if any(v is not None for v in p):
        y = np.array([np.nan if v is None else v for v in p], float)
        lo, hi = (np.array([np.nan if r["predicted"]["interval"][j] is None else r["predicted"]["interval"][j]
                            for r in recs], float) for j in (0, 1))
        ax.fill_between(n, lo, hi, color="k", alpha=0.15, lw=0, label="predicted M*/N, 95% interval")
        ax.plot(n, y, "ko-", lw=1.5, ms=4, label=f"predicted M*/N ({weighting_name(recs)} weighting)")
    obs = [r for r in recs if r["observed"].get("m_over_n") is not None]
    if obs:
        oy = [r["observed"]["m_over_n"] for r in obs]
        err = _bars(oy, [r["observed"]["interval"] for r in obs])
        # drawn 5 points to the right, so that it does not hide under the predicted curve at the same N
        ax.errorbar([r["n_train"] for r in obs], oy, yerr=err, fmt="x", color="k", ms=8, mew=2, capsize=3,
                    transform=shifted(ax, 5, [r["n_train"] for r in obs], oy),
                    label="observed transition (ratio = 0.5), 95% interval")
    if len(set(n)) > 1:
        ax.set_xscale("log")
        ax.set_xticks(sorted(set(n)), [str(v) for v in sorted(set(n))])
        ax.minorticks_off()
    ax.set(xlabel="training-set size N", ylabel="M / N",
           title=_wrap(f"phase diagram: {data_label(head)}, {head['model']}"))
    legend_outside(ax)


def agreement_panel(ax, summary: list[dict]) -> None:
    """One marker per data configuration (one legend entry per N), with both intervals as error bars."""
    styles = _styles(summary)
    inside = 0
    for rec in summary:
        c, marker, dx = styles[rec["data_key"]]
        pred, obs = rec["predicted"], rec["observed"]
        if pred.get("m_over_n") is None or obs.get("m_over_n") is None:
            why = "no prediction" if pred.get("m_over_n") is None else f"observed {obs.get('where', 'off the grid')}"
            ax.plot([], [], ls="none", marker=marker, mfc="none", color=c, label=f"{_label(rec)}: not drawn, {why}")
            continue
        inside += 1
        px, oy = pred["m_over_n"], obs["m_over_n"]
        ax.errorbar([px], [oy], xerr=_bars([px], [pred["interval"]]), yerr=_bars([oy], [obs["interval"]]),
                    fmt=marker, ms=6, mfc="none", mew=1.5, capsize=2, color=c, transform=shifted(ax, dx),
                    label=_label(rec))
    # zoomed on the drawn points and their intervals (square, so the diagonal stays at 45 degrees)
    drawn = [r for r in summary if None not in (r["predicted"].get("m_over_n"), r["observed"].get("m_over_n"))]
    vals = [v for r in drawn for v in (r["predicted"]["m_over_n"], r["observed"]["m_over_n"],
                                        *r["predicted"]["interval"], *r["observed"]["interval"]) if v is not None]
    lo, hi = (max(0.0, min(vals) - 0.05), max(vals) + 0.05) if vals else (0.0, 1.0)
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="observed = predicted")
    ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel=f"predicted M*/N ({weighting_name(summary)} weighting)",
           ylabel="observed transition M/N",
           title=_wrap(f"predicted vs observed: {inside} of {len(summary)} configurations cross inside the grid"))
    legend_outside(ax)


def _decorate(fig, summary: list[dict], width: int) -> None:
    families = sorted({data_label(r) for r in summary})
    fig.suptitle(textwrap.fill(f"{', '.join(families) or 'sweep'}: observed transition vs crossover predicted "
                               f"under {weighting_name(summary)} weighting", width))
    line = convergence_line(summary)
    if line:
        fig.supxlabel(textwrap.fill(line[0], int(width * 1.4)), color="0.35" if line[1] else "tab:red", fontsize=8)


def sweep_figure(table: pd.DataFrame, summary: list[dict], predictions: dict, t: float = 0.5):
    fig, axes = new_figure((17, 10.5), 2, 2)
    ratio_panel(axes[0, 0], table, summary)
    losses_panel(axes[0, 1], table, summary, predictions, t)
    phase_panel(axes[1, 0], table, summary)
    agreement_panel(axes[1, 1], summary)
    _decorate(fig, summary, 110)
    return fig


def panel_figures(table: pd.DataFrame, summary: list[dict], predictions: dict, t: float = 0.5) -> dict:
    """{panel name: Figure} for ratio, losses, phase, agreement."""
    draw = {
        "ratio": lambda ax: ratio_panel(ax, table, summary),
        "losses": lambda ax: losses_panel(ax, table, summary, predictions, t),
        "phase": lambda ax: phase_panel(ax, table, summary),
        "agreement": lambda ax: agreement_panel(ax, summary),
    }
    figs = {}
    for name, fn in draw.items():
        fig, ax = new_figure((9.5, 5.2 if name != "phase" else 6.2))
        fn(ax)
        _decorate(fig, summary, 90)
        figs[name] = fig
    return figs


def plot_sweep(table: pd.DataFrame, summary: list[dict], predictions: dict, out: Path, t: float = 0.5) -> Path:
    save_figure(sweep_figure(table, summary, predictions, t), Path(out))
    return Path(out)


def save_panels(table: pd.DataFrame, summary: list[dict], predictions: dict, out_dir: Path,
                t: float = 0.5, prefix: str = "") -> list[Path]:
    """Each panel as its own PNG under out_dir: {prefix}ratio.png, losses.png, phase.png, agreement.png."""
    paths = []
    for name, fig in panel_figures(table, summary, predictions, t).items():
        path = Path(out_dir) / f"{prefix}{name}.png"
        save_figure(fig, path)
        paths.append(path)
    return paths
