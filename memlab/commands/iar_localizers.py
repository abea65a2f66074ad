"""`memlab iar localizers RUN`: every localizer on one yardstick, and the leaderboard. Arguments only here (no
torch at import). Writes WORK/leaderboard[-TAG] (WORK: RUN, or the checkpoint directory of --checkpoint/--stage):

  leaderboard.csv / .parquet   one row per method (DEL at matched cost, INJ recall@k, per-image overlap, seconds)
  del/                         the DEL yardstick: every method's top-k edits and one random cloud
                               (yardstick.parquet, verdicts.csv, curves.csv, pareto.png; memlab.iar.compare)
  where.csv / where.png        where each method puts memorization: share of its top 10% units per block
                               (and per scale with --per-scale; memlab.iar.where, as `memlab iar where`)
  metrics.json                 the leaderboard as JSON; written last
with the unit tables in WORK/localizers/NAME (and WORK/localize for unitmem), INJ in RUN/inject (--inject),
per-image tables in WORK/localizers/NAME-per-image (--per-image). Every part resumes."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from memlab.commands.iar_localize import EXTRACT, _captioned, _common, _configs, _emit, _localizer_units, _open, \
    _token_cache, print_table
from memlab.errors import UsageError, check_tag
from memlab.iar.config import YARDSTICK_LOCALIZERS, InjectConfig, LocalizerConfig, YardstickConfig
from memlab.options import Section, names

YARD = Section("yardstick", YardstickConfig, skip=("localizer",), title="DEL: every method's top-k edits against "
                                                                          "one random-edit cloud at matched cost")
LOCAL = Section("localizer", LocalizerConfig, follow={"seed": ("yardstick", "seed"), "batch_size": ("extract", "batch_size")},
                skip=("per_image",), title="localizers")
INJECT = Section("inject", InjectConfig, follow={"localizer": ("localizer", None)}, skip=("batch_size",),
                 title="INJ (with --inject): injected ground truth")
SECTIONS = [*EXTRACT, YARD, LOCAL, INJECT]


def register(iar_sub) -> None:
    p = iar_sub.add_parser("localizers", help="every localizer on one yardstick (DEL), INJ recall, a leaderboard",
                           description="Score localizers side by side: DEL (each method's top-k% edits against one "
                                       "random-edit cloud at matched cost), optionally INJ (recall@k of injected "
                                       "units) and the per-image mode; writes WORK/leaderboard[-TAG].")
    _common(p, SECTIONS)
    p.add_argument("--methods", type=names, default=None, metavar="A,B,...",
                   help=f"localizers (default all: {', '.join(YARDSTICK_LOCALIZERS)}; random is the cloud)")
    p.add_argument("--inject", action="store_true", help="also INJ: fine-tune injected images into random units "
                                                         "(RUN/inject) and score recall@k")
    p.add_argument("--per-image", action="store_true", help="also one target at a time: overlap of the top 1%% units "
                                                            "between targets")
    p.add_argument("--per-scale", action="store_true", help="also per-scale unit tables (next-scale models; "
                                                            "WORK/localizers/NAME-per-scale) in where.csv")
    p.add_argument("--tag", default="", help="write WORK/leaderboard-TAG instead of WORK/leaderboard")
    p.set_defaults(func=run_localizers)


def _methods(args) -> list[str]:
    methods = list(dict.fromkeys(args.methods)) if args.methods else list(YARDSTICK_LOCALIZERS)
    if not methods:
        raise UsageError(f"--methods is empty; allowed: {', '.join(YARDSTICK_LOCALIZERS)}")
    for m in methods:
        if m == "random":
            raise UsageError("--methods: random is the yardstick's random cloud, every method is compared with it")
        if m not in YARDSTICK_LOCALIZERS:
            raise UsageError(f"unknown localizer {m!r} in --methods; allowed: {', '.join(YARDSTICK_LOCALIZERS)}")
    return methods


def run_localizers(args) -> int:
    methods = _methods(args)
    cfgs = _configs(args, SECTIONS)
    check_tag("--tag", args.tag)
    if args.inject and (args.checkpoint is not None or args.stage not in (None, "final")):
        raise UsageError("--inject works on the final weights; leave out --checkpoint/--stage, or drop --inject")
    from memlab.iar.extract import attack_prefix
    from memlab.iar.localizers import USES_LABELS

    model, data, rd, stage = _open(args, f"leaderboard-{args.tag}" if args.tag else "leaderboard", "iar-localizers")
    attack_prefix(model, cfgs["extract"].prefix)
    if args.inject:
        from memlab.iar.inject import draw_injection

        inj = cfgs["inject"]  # too few held-out images: one line, before anything is written
        draw_injection(model, len(data.heldout_images), inj.n_images, inj.fractions[0], inj.seeds[0])
    rd.start({"methods": methods, "inject": args.inject, "per_image": args.per_image})
    here = stage.work_dir
    units, seconds = {}, {}
    for name in methods:
        cfgs_m = {**cfgs, "yardstick": replace(cfgs["yardstick"], localizer=name)}
        units[name], seconds[name] = _localizer_units(model, data, cfgs_m, here, _token_cache(args))
        print(f"localizer {name}: {seconds[name]:.1f} s", file=sys.stderr)
    dele = _del(args, model, data, units, seconds, cfgs, rd, stage)
    inj = _inj(args, methods, cfgs, model, data) if args.inject else None
    overlap = _per_image(model, data, methods, cfgs, here) if args.per_image else None
    from memlab.commands.iar_where import where_outputs

    where = where_outputs(model, data, methods, cfgs, here, _token_cache(args), rd.path, args.per_scale, units=units)
    from memlab.iar.leaderboard import leaderboard
    from memlab.io import write_parquet, write_text

    board = leaderboard(methods, seconds, {m: m in USES_LABELS for m in methods}, dele, inj, overlap)
    write_parquet(rd.path / "leaderboard.parquet", board)
    write_text(rd.path / "leaderboard.csv", board.to_csv(index=False))
    print_table(f"localizer leaderboard ({model.arch}, {stage.name} stage, epoch {stage.epoch})", board)
    metrics = {"arch": model.arch, "stage": stage.columns(), "methods": methods,
               "leaderboard": board.to_dict(orient="records"), "where": where.to_dict(orient="records")}
    rd.finish(metrics)
    return _emit(args, metrics)


def _del(args, model, data, units, seconds, cfgs, rd, stage) -> dict:
    from memlab.iar.classifier import ensure_classifier
    from memlab.iar.compare import run_comparison
    from memlab.iar.leaderboard import del_rows
    from memlab.iar.load import read_run_config
    from memlab.iar.pipeline import units_digest
    from memlab.io import read_parquet
    from memlab.rundir import RunDir

    import pandas as pd

    run = Path(args.run)
    out = RunDir(rd.path / "del", "iar-yardstick")
    digest = ",".join(f"{m}:{units_digest(u)}" for m, u in units.items())
    run_comparison(model, data, units, cfgs["yardstick"], cfgs["extract"], out, run_dir=stage.work_dir,
                   classifier=None if _captioned(args) else lambda: ensure_classifier(run, read_run_config(run).data)[0],
                   localizer_seconds=seconds, units_digest=digest, show=print_table, stage=stage.columns())
    return del_rows(read_parquet(out.path / "yardstick.parquet"), pd.read_csv(out.path / "verdicts.csv"))


def _inj(args, methods, cfgs, model, data) -> dict:
    from memlab.iar.inject_recall import run_inj
    from memlab.iar.leaderboard import inj_rows

    base = None
    if _captioned(args):  # an external model: the fine-tune runs on an fp32 copy of the pipeline's transformer
        import torch

        from memlab.iar.adapters.external import load_work_dir

        fp32 = next(model.parameters()).dtype == torch.float32
        base = (model, data) if fp32 else load_work_dir(args.run, device=args.device or "auto", precision="fp32")
    return inj_rows(run_inj(args.run, methods, cfgs["inject"], base_and_data=base))


def _per_image(model, data, methods, cfgs, here: Path) -> dict:
    from memlab.iar.compare import choose_sets
    from memlab.iar.leaderboard import per_image_overlap
    from memlab.iar.localizers import localize_into

    ycfg = cfgs["yardstick"]
    sets = choose_sets(model, data, here, cfgs["extract"], ycfg.targets, ycfg.seed)
    cfg = replace(cfgs["localizer"], per_image=True)
    out = {}
    for name in methods:
        table, _ = localize_into(here / "localizers" / f"{name}-per-image", name, model, data, sets, cfg)
        out[name] = per_image_overlap(table)
    return out
