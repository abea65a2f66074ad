"""The unlearning curves of the 8x8 setting (docs/iar_mitigations.md, "Unlearning"): copies each run's trajectory
into this folder, writes the table of final points and draws the figures.

    python docs/results/mitigations_8x8/unlearn/summarize.py /work/runs8/unlearn

Reads DIR/<base run>-<method>/{trajectory.csv, metrics.json}; writes here trajectories/<run>-<method>.csv,
final.csv (one row per run and method: the final point on the full yardstick, 256 samples), curves.png
(targets, controls and held-out NLL against the step) and tradeoff.png (targets against controls extracted).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from memlab.io import new_figure, save_figure

HERE = Path(__file__).resolve().parent
METHODS = ("ga", "graddiff", "kl", "npo", "selective")
RUNS = ("B-next-scale-s0", "B-next-scale-s1", "B-raster-s0", "B-raster-s1")


def collect(root: Path) -> tuple[dict, pd.DataFrame]:
    curves, finals = {}, []
    (HERE / "trajectories").mkdir(exist_ok=True)
    for run in RUNS:
        for m in METHODS:
            d = root / f"{run}-{m}"
            if not (d / "metrics.json").is_file():
                continue
            t = pd.read_csv(d / "trajectory.csv")
            t.to_csv(HERE / "trajectories" / f"{run}-{m}.csv", index=False)
            curves[run, m] = t
            u = json.loads((d / "metrics.json").read_text())["unlearn"]
            f, b = u["final"], u["baseline"]
            finals.append({"run": run, "method": m, "steps": u["steps"], "stopped": u["stopped"],
                           "train_seconds": round(u["train_seconds"], 1), "T_n": f["T_n"],
                           "T_before": b["T_extracted"], "T_after": f["T_extracted"], "C_n": f["C_n"],
                           "C_before": b["C_extracted"], "C_after": f["C_extracted"],
                           "heldout_nll_before": b["heldout_nll"], "heldout_nll_after": f["heldout_nll"],
                           **{k: f[k] for k in ("cost_sample_nll", "cost_fd", "cost_class_consistency",
                                                "specificity")}})
    return curves, pd.DataFrame(finals)


def curves_figure(curves: dict):
    runs = [r for r in RUNS if any((r, m) in curves for m in METHODS)]
    fig, axes = new_figure((3.3 * len(runs), 8.4), 3, len(runs), squeeze=False)
    for j, run in enumerate(runs):
        for m in METHODS:
            if (run, m) not in curves:
                continue
            t = curves[run, m]
            axes[0][j].plot(t["step"], t["T_extracted"], "o-", ms=2.5, label=m)
            axes[1][j].plot(t["step"], t["C_extracted"], "o-", ms=2.5, label=m)
            axes[2][j].plot(t["step"], t["heldout_nll"], "o-", ms=2.5, label=m)
        axes[0][j].set_title(run.removeprefix("B-"), fontsize=9)
        axes[0][j].set_ylabel("targets extracted (of 8)")
        axes[1][j].set_ylabel("controls extracted")
        axes[2][j].set_ylabel("held-out NLL (nats per token)")
        axes[2][j].set_xlabel("unlearning step (Adam, lr 1e-4)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("unlearning the 8 planted duplicates: extraction with the original model's threshold", fontsize=10)
    return fig


def tradeoff_figure(curves: dict):
    runs = [r for r in RUNS if any((r, m) in curves for m in METHODS)]
    fig, axes = new_figure((3.3 * len(runs), 3.3), 1, len(runs), squeeze=False)
    for j, run in enumerate(runs):
        ax = axes[0][j]
        for m in METHODS:
            if (run, m) in curves:
                t = curves[run, m]
                ax.plot(t["C_extracted"] / t["C_n"], t["T_extracted"] / t["T_n"], "o-", ms=2.5, label=m)
        ax.set(title=run.removeprefix("B-"), xlabel="share of controls extracted", ylabel="share of targets extracted",
               xlim=(-0.03, 1.03), ylim=(-0.03, 1.03))
        ax.invert_xaxis()  # each curve starts at the top left (1, 1); a specific method goes down, staying left
    axes[0][0].legend(fontsize=7)
    fig.suptitle("targets against controls along each trajectory (a specific method drops targets, keeps controls)",
                 fontsize=10)
    return fig


def main(root: str) -> None:
    curves, finals = collect(Path(root))
    finals.to_csv(HERE / "final.csv", index=False)
    save_figure(curves_figure(curves), HERE / "curves.png")
    save_figure(tradeoff_figure(curves), HERE / "tradeoff.png")
    print(finals.to_string(index=False))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/work/runs8/unlearn")
