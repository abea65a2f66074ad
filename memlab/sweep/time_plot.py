"""Figure of the training-time axis (sweep.timescales): per series, left the mean memorization ratio against
steps / N for every N (if t_mem is proportional to N the curves collapse, as Bonnaire et al. show), right
t_mem against N on log-log axes with the least-squares power law; censored cells drawn as open triangles
at their last (right-censored, pointing up) or first (left-censored, pointing down; step 0 drawn at 1)
checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from memlab.io import legend_outside, new_figure, save_figure
from memlab.sweep.timescales import BEFORE, CROSSED, LEVEL


def time_figure(records: list[dict], fits: list[dict]):
    fig, axes = new_figure(figsize=(11, 3.6 * len(fits)), nrows=len(fits), ncols=2, squeeze=False)
    for (ax_c, ax_f), fit in zip(axes, fits):
        cells = [r for r in records if r["series"] == fit["series"]]
        colours = {n: c for n, c in zip(sorted({r["n_train"] for r in cells}),
                                        _cmap(len({r["n_train"] for r in cells})))}
        for r in cells:
            steps = np.asarray(r["steps"], float)
            keep = steps > 0  # log axis: step 0 has no place on it
            ratio = np.array([np.nan if v is None else v for v in r["mean_ratio"]], float)
            ax_c.plot(steps[keep] / r["n_train"], ratio[keep], "o-", ms=3, color=colours[r["n_train"]],
                      label=f"N={r['n_train']}" + ("" if r["status"] == CROSSED else f" ({r['status']})"))
        ax_c.axhline(LEVEL, color="0.5", lw=0.8, ls=":")
        ax_c.set(xscale="log", xlabel="training steps / N", ylabel="memorization ratio (mean over seeds)",
                 ylim=(-0.03, 1.03), title=fit["series"])
        legend_outside(ax_c)
        crossed = [r for r in cells if r["status"] == CROSSED]
        if crossed:
            n = np.array([r["n_train"] for r in crossed], float)
            t = np.array([r["t_mem"] for r in crossed], float)
            br = np.array([r["t_mem_bracket"] for r in crossed], float)
            ax_f.errorbar(n, t, yerr=[t - br[:, 0], br[:, 1] - t], fmt="o", capsize=3,
                          label="t_mem (bars: bracketing checkpoints)")
        for r in cells:
            if r["status"] != CROSSED:
                y = r["t_mem_bracket"][1] if r["status"] == BEFORE else r["t_mem_bracket"][0]
                y = max(y, 1.0)  # log axis: a ratio already >= 0.5 at step 0 is drawn at step 1
                ax_f.plot([r["n_train"]], [y], "v" if r["status"] == BEFORE else "^", mfc="none", color="C3",
                          label=f"{r['status']} (t_mem beyond this checkpoint)")
        if fit["exponent"] is not None:
            n_line = np.geomspace(min(fit["n_values"]), max(fit["n_values"]), 50)
            iv = fit["interval"]
            ci = f" [{iv[0]:.2f}, {iv[1]:.2f}]" if iv else " (no interval: 2 points)"
            ax_f.plot(n_line, fit["prefactor"] * n_line ** fit["exponent"], "k--", lw=1,
                      label=f"fit: t_mem ~ N^{fit['exponent']:.2f}{ci}")
        ax_f.set(xscale="log", yscale="log", xlabel="training-set size N", ylabel="memorization time (steps)")
        handles, labels = ax_f.get_legend_handles_labels()
        if handles:
            uniq = dict(zip(labels, handles))
            ax_f.legend(uniq.values(), uniq.keys(), loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7)
    return fig


def _cmap(k: int):
    import matplotlib

    return [matplotlib.colormaps["viridis"](x) for x in np.linspace(0.0, 0.9, max(k, 1))]


def plot_time(records: list[dict], fits: list[dict], out: Path) -> Path:
    save_figure(time_figure(records, fits), out)
    return out
