"""The phase-diagram part of `make demo`: a small GMM sweep (d=30, K=4, N in {50, 100}, mixture estimator,
five sizes, two seeds), its observed-vs-predicted summary and its figures, in a few minutes on 2 cores.
Re-running resumes the sweep (finished cells are skipped).

Figures, one set per prediction weighting W (the training objective's, then x0-uniform): phase_W.png
(all four panels) and phase_W_{ratio,losses,phase,agreement}.png; beside them phase_summary_W.json."""

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
# the prediction under the training objective and under x0-uniform weighting, side by side: at d=30 they
# disagree (docs/phase_diagrams.md), and the demo shows both rather than pick one (None: the sweep's own)
WEIGHTINGS = (None, "x0-uniform")


def _say(progress: bool, *lines) -> None:
    if not progress:
        return
    from rich.console import Console

    console = Console(file=sys.stderr, width=160)  # wide even when stderr is not a terminal
    for line in lines:  # strings as they are (no rich markup), tables rendered
        console.print(line, **({"markup": False, "soft_wrap": True} if isinstance(line, str) else {}))


def run_demo_phase(out_dir: Path, workers: int | None = None, progress: bool = True, spec: dict | None = None,
                   **standins) -> list[Path]:
    """Run the demo sweep into out_dir/phase_gmm and return the figure paths (each weighting's composite
    first). `spec` replaces DEMO_SPEC; `standins` (cell_fn, resolve_train, predict_fn, resolve_predict)
    go to run_sweep, predict_fn also to summarize_dir: tests run the demo with cheap stand-ins."""
    from memlab.sweep.phase import summarize_dir
    from memlab.sweep.plot import plot_sweep, save_panels
    from memlab.sweep.runner import run_sweep
    from memlab.sweep.spec import parse_spec
    from memlab.sweep.table import convergence, summary_table, weighting_name

    sweep_dir = Path(out_dir) / "phase_gmm"
    run_sweep(parse_spec(spec or DEMO_SPEC), sweep_dir, workers=workers, progress=progress, **standins)
    figures, done = [], set()
    for weighting in WEIGHTINGS:
        table, predictions, summary = summarize_dir(sweep_dir, weighting=weighting,
                                                    predict_fn=standins.get("predict_fn"))
        name = weighting or weighting_name(summary)
        if name in done:  # the sweep was trained under x0-uniform already
            continue
        done.add(name)
        conv = convergence(summary)
        write_json(sweep_dir / f"phase_summary_{name}.json", {"weighting": name, **conv, "configurations": summary})
        _say(progress, f"prediction weighting: {name}{'' if weighting else ' (the training objective)'}",
             summary_table(summary))
        if conv["convergence_note"]:  # said even without progress, as the figures say it
            print(f"[demo] {conv['convergence_note']}", file=sys.stderr)
        figures.append(plot_sweep(table, summary, predictions, sweep_dir / f"phase_{name}.png"))
        figures += save_panels(table, summary, predictions, sweep_dir, prefix=f"phase_{name}_")
    return figures


if __name__ == "__main__":  # python -m memlab.sweep.demo OUT
    paths = run_demo_phase(Path(sys.argv[1] if len(sys.argv) > 1 else "demo_out"))
    print(to_json([str(p) for p in paths], indent=None))
