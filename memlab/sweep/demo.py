"""The phase-diagram part of `make demo`: a small GMM sweep (d=30, K=4, N in {50, 100}, mixture estimator,
five sizes, two seeds), its observed-vs-predicted summary and its figures, in a few minutes on 2 cores.
Re-running resumes the sweep (finished cells are skipped)."""

from __future__ import annotations

import sys
from pathlib import Path

from memlab.io import to_json, write_json

DEMO_SPEC = {
    "name": "demo-gmm",
    "data": {"dataset": "gmm", "dim": 30, "components": 4, "n_train": [50, 100]},
    "model": {"kind": "mixture", "unit": "fraction", "sizes": [0.2, 0.5, 0.7, 0.85, 1.0]},
    "seeds": {"count": 2},
    # lr 1e-2 for 1000 steps: the ratio stops moving after ~800 steps at d=30 (docs/phase_diagrams.md)
    "train": {"steps": 1000, "lr": 1e-2, "n_checkpoints": 6},
    "sampling": {"samples": 100},
    "predict": {"repeats": 5},
}


def run_demo_phase(out_dir: Path, workers: int | None = None, progress: bool = True) -> list[Path]:
    """Run the demo sweep into out_dir/phase_gmm and return the figure paths (the composite first)."""
    from memlab.commands.phase import print_summary
    from memlab.sweep.phase import summarize_dir
    from memlab.sweep.plot import plot_sweep, save_panels
    from memlab.sweep.runner import run_sweep
    from memlab.sweep.spec import parse_spec

    sweep_dir = Path(out_dir) / "phase_gmm"
    run_sweep(parse_spec(DEMO_SPEC), sweep_dir, workers=workers, progress=progress)
    figures = []
    # The prediction under the training objective and under x0-uniform weighting, side by side:
    # at d=30 they disagree (docs/phase_diagrams.md), and the demo shows both rather than pick one.
    for weighting, suffix in ((None, ""), ("x0-uniform", "_x0-uniform")):
        table, predictions, summary = summarize_dir(sweep_dir, weighting=weighting)
        used = summary[0]["predicted"]["weighting"] if summary else weighting
        write_json(sweep_dir / f"phase_summary{suffix}.json", {"weighting": used, "configurations": summary})
        if progress:
            print(f"prediction weighting: {used}{'' if weighting else ' (the training objective)'}", file=sys.stderr)
            print_summary(summary)
        figures.append(plot_sweep(table, summary, predictions, sweep_dir / f"phase{suffix}.png"))
        if weighting is None:
            figures += save_panels(table, summary, predictions, sweep_dir, prefix="phase_panel_")
    return figures


if __name__ == "__main__":  # python -m memlab.sweep.demo OUT
    paths = run_demo_phase(Path(sys.argv[1] if len(sys.argv) > 1 else "demo_out"))
    print(to_json([str(p) for p in paths], indent=None))
