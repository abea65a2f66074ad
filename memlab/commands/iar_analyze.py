"""`memlab iar analyze RUN --what entropy,inference,perturb,frequency`: which images get memorized (the
entropy-memorization law, dataset inference, prefix perturbation and redundancy, duplication frequency).
Arguments only here (no torch at import); everything is checked before RUN/analyze[-TAG] is created."""

from __future__ import annotations

import sys

from memlab.errors import check_tag
from memlab.iar.analyze.config import AnalyzeConfig
from memlab.options import Section

ANALYZE = [Section("analyze", AnalyzeConfig, title="analyses")]


def register(iar_sub) -> None:
    from memlab.commands.iar_localize import _common

    p = iar_sub.add_parser("analyze", help="which images get memorized: entropy law, dataset inference, prefix "
                                           "perturbation, frequency",
                           description="Score every training image by the greedy continuation of its prefix "
                                       "(token match, normalized edit distance; per scale for next-scale models), "
                                       "then run the analyses --what names: entropy (the entropy-memorization "
                                       "law with bootstrap intervals), inference (the entropy-adjusted score as "
                                       "a train vs held-out test beside loss, zlib-ratio and min-k%% baselines), "
                                       "perturb (prefix perturbation drops, redundancy), frequency (score "
                                       "against copies; with --reference, split by memorized at one copy). "
                                       "Writes tables (CSV, parquet) and figures (PNG) to RUN/analyze[-TAG] "
                                       "(beside the checkpoint with --checkpoint / --stage).")
    _common(p, ANALYZE)
    p.add_argument("--tag", default="", help="write to RUN/analyze-TAG instead of RUN/analyze")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default 0: torch's choice)")
    p.set_defaults(func=run_analyze)


def _reference(args, cfg):
    """(model, data) of --reference at the same stage as RUN, or None; checked, nothing written."""
    if not cfg.reference:
        return None
    from memlab.iar.load import load_run, load_run_data, run_stage
    from memlab.iar.pipeline import fold_duplicates
    from memlab.rundir import RunDir

    RunDir.existing(cfg.reference, "iar-train", what="--reference")
    stage = run_stage(cfg.reference, args.checkpoint, args.stage)
    model = load_run(cfg.reference, stage if stage.name != "final" else None)
    return model, fold_duplicates(*load_run_data(cfg.reference))


def run_analyze(args) -> int:
    from memlab.commands.iar_localize import _configs, _emit, _open, print_table
    from memlab.errors import check_int

    check_int("--threads", args.threads, 0)
    check_tag("--tag", args.tag)
    cfg = _configs(args, ANALYZE)["analyze"]
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from memlab.iar.analyze.registry import prepare, run_analyses

    model, data, rd, stage = _open(args, f"analyze-{args.tag}" if args.tag else "analyze", "iar-analyze")
    ctx = prepare(model, data, cfg, reference=_reference(args, cfg), run=args.run)
    metrics = run_analyses(ctx, rd, show=print_table)
    metrics["stage"] = stage.columns()
    print(f"{metrics['n_memorized']} of {metrics['n_train']} training images memorized (edit score >= "
          f"{cfg.memorized_at}); tables and figures in {rd.path}", file=sys.stderr)
    return _emit(args, metrics)
