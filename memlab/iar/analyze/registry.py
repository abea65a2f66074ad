"""The analyses by name, and the one function that runs a selection of them into a result directory:

    OUT/config.json            {"kind": "iar-analyze", "analyze": AnalyzeConfig, "prefix": ...}
    OUT/scores.parquet, .csv   one row per training image: copies, token_match, edit_score (per scale too),
                               entropy, memorized
    OUT/<table>.csv            each analysis's tables (entropy_fits, inference_auc, perturb_drops, frequency, ...)
    OUT/<analysis>.png         each analysis's figure
    OUT/metrics.json           the summaries, written last

A new analysis is one module with `analyze(ctx: Context) -> Result` and one line here."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from memlab.iar.analyze import composition, entropy, frequency, inference, perturb
from memlab.iar.analyze.config import ANALYSES, AnalyzeConfig
from memlab.iar.analyze.context import Context, Result
from memlab.iar.extract import attack_prefix
from memlab.iar.interface import IARModel
from memlab.iar.pipeline import RunData
from memlab.rundir import RunDir

REGISTRY: dict[str, Callable[[Context], Result]] = {
    "entropy": entropy.analyze,
    "inference": inference.analyze,
    "perturb": perturb.analyze,
    "frequency": frequency.analyze,
    "composition": composition.analyze,
}
assert tuple(REGISTRY) == ANALYSES, "memlab.iar.analyze.config.ANALYSES names the registry (the CLI reads it)"


def prepare(model: IARModel, data: RunData, cfg: AnalyzeConfig, reference=None, run: Path | None = None) -> Context:
    """Check everything the analyses need of this model (prefix, perturbation counts, the reference's prefix)
    and return their context; nothing is computed or written yet."""
    prefix = attack_prefix(model, cfg.prefix)
    if "perturb" in cfg.what:
        perturb.perturb_counts(model, prefix, cfg.ms)
    if reference is not None:
        attack_prefix(reference[0], prefix)
    if "composition" in cfg.what:  # a factors run with the named checkpoints
        composition.selected_epochs(composition.factor_run(run)[0], cfg.epochs)
    return Context(model, data, cfg, prefix, reference=reference, run=run)


def run_analyses(ctx: Context, out: Path | RunDir, show=None) -> dict:
    """Run `ctx.cfg.what` into `out`; -> metrics (also OUT/metrics.json). `show(title, DataFrame)`: where a
    command puts the main table of each analysis."""
    from memlab.io import save_figure, write_parquet, write_text

    rd = out if isinstance(out, RunDir) else RunDir(Path(out), "iar-analyze")
    rd.start({"analyze": asdict(ctx.cfg), "prefix": ctx.prefix})
    t0 = time.perf_counter()
    scores = ctx.train_scores
    write_parquet(rd.path / "scores.parquet", scores)
    write_text(rd.path / "scores.csv", scores.to_csv(index=False))
    metrics = {"arch": ctx.model.arch, "prefix": ctx.prefix, "prefix_unit": ctx.model.prefix_unit,
               "n_train": len(scores), "n_memorized": int(scores["memorized"].sum()),
               "memorized_at": ctx.cfg.memorized_at, "mean_edit_score": float(scores["edit_score"].mean()),
               "analyses": {}}
    for name in ctx.cfg.what:
        t = time.perf_counter()
        res = REGISTRY[name](ctx)
        for tname, df in res.tables.items():
            write_text(rd.path / f"{tname}.csv", df.to_csv(index=False))
        for fname, fig in res.figures.items():
            save_figure(fig, rd.path / f"{fname}.png")
        metrics["analyses"][name] = {**res.summary, "seconds": time.perf_counter() - t,
                                     "tables": sorted(res.tables), "figures": sorted(res.figures)}
        if show is not None and res.tables:
            first = next(iter(res.tables))
            show(f"{name}: {first}", res.tables[first])
    metrics["seconds"] = time.perf_counter() - t0
    rd.finish(metrics)
    return metrics
