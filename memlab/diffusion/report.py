"""PNG figures of one training run: the curve over training time (memorization ratio with its interval,
train and test x0 loss) and the final per-t train/test x0 losses. `run_figures` builds them, `plot_run`
writes them."""

from __future__ import annotations

import textwrap
from pathlib import Path

from memlab.io import legend_outside, new_figure, save_figure


def _seeds(metrics: dict) -> str:
    seeds = list(metrics.get("seeds") or [])
    if not seeds:
        return "seed ?"
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    return f"seeds {seeds[0]}-{seeds[-1]} (mean of {len(seeds)})" if seeds == list(range(seeds[0], seeds[-1] + 1)) \
        else f"seeds {', '.join(map(str, seeds))} (mean)"


def _run_name(metrics: dict) -> str:
    return f"{metrics['model']} size {metrics['size']}, N = {metrics['n_train']}"


def curve_figure(metrics: dict):
    ck = [c for c in metrics["checkpoints"] if c.get("memorization_ratio") is not None]
    fig, (ax_m, ax_l) = new_figure((10.5, 3.6), 1, 2)
    if ck:
        x = [max(c["step"], 1) for c in ck]  # step 0 drawn at 1 on the log axis
        ax_m.fill_between(x, [c["interval"][0] for c in ck], [c["interval"][1] for c in ck], color="C3", alpha=0.2,
                          lw=0, label="95% interval")
        ax_m.plot(x, [c["memorization_ratio"] for c in ck], "o-", color="C3", label="memorization ratio")
        ax_l.plot(x, [c["train_loss"] for c in ck], "o-", label="train")
        ax_l.plot(x, [c["test_loss"] for c in ck], "s--", mfc="none", label="test")  # open, dashed: train shows through
        legend_outside(ax_m)
        legend_outside(ax_l)
    for ax in (ax_m, ax_l):
        ax.set_xscale("log")
        ax.set_xlabel("training step (step 0 drawn at 1)")
    ax_m.set(ylim=(-0.02, 1.02), ylabel="memorization ratio", title="memorization over training")
    ax_l.set(ylabel="x0 loss, mean over the t grid", title="loss over training")
    fig.suptitle(textwrap.fill(f"{_run_name(metrics)}, {metrics.get('steps', '?')} steps, {_seeds(metrics)}, "
                               f"status {metrics['status']}", 100))
    return fig


def per_t_figure(metrics: dict):
    fig, ax = new_figure((6.2, 3.8))
    t = [r["t"] for r in metrics["per_t"]]
    ax.plot(t, [r["train_loss"] for r in metrics["per_t"]], "o-", ms=3, label="train")
    ax.plot(t, [r["test_loss"] for r in metrics["per_t"]], "s--", ms=4, mfc="none", label="test")
    ax.set(xscale="log", yscale="log", xlabel="t (noise level)", ylabel="x0 loss")
    legend_outside(ax)
    ax.set_title(f"x0 loss per noise level at the end of training\n{_run_name(metrics)}, "
                 f"step {metrics.get('steps', '?')}, {_seeds(metrics)}", fontsize=10)
    return fig


def run_figures(metrics: dict) -> dict[str, object]:
    """{file name: Figure}: curve.png always, per_t.png when the run has per-t losses."""
    figs = {"curve.png": curve_figure(metrics)}
    if metrics["per_t"]:
        figs["per_t.png"] = per_t_figure(metrics)
    return figs


def plot_run(metrics: dict, out: Path) -> None:
    for name, fig in run_figures(metrics).items():
        save_figure(fig, Path(out) / name)
