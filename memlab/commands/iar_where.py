"""`memlab iar where RUN`: where each localizer puts memorization (share of its top-k% units per block and, with
--per-scale on a next-scale model, per scale), from the same unit tables as `memlab iar localizers` (reused
when finished, computed otherwise), without the DEL evaluation. Writes WORK/where[-TAG] (WORK: RUN, or the
checkpoint directory of --checkpoint/--stage): where.csv (memlab.iar.where), where.png, metrics.json last.
`memlab iar localizers` writes the same where.csv / where.png into its leaderboard directory."""

from __future__ import annotations

from pathlib import Path

from memlab.commands.iar_localize import EXTRACT, _common, _configs, _emit, _localizer_units, _open, print_table
from memlab.errors import UsageError, check_float, check_tag
from memlab.iar.config import YARDSTICK_LOCALIZERS, LocalizerConfig, YardstickConfig
from memlab.options import Section, names

_SETS_ONLY = tuple(f for f in YardstickConfig.__dataclass_fields__ if f not in ("targets", "seed"))
SETS = Section("yardstick", YardstickConfig, skip=_SETS_ONLY, title="evaluation sets (as the leaderboard's)")
LOCAL = Section("localizer", LocalizerConfig, follow={"seed": ("yardstick", "seed"), "batch_size": ("extract", "batch_size")},
                skip=("per_image",), title="localizers")
SECTIONS = [*EXTRACT, SETS, LOCAL]
WHERE_TOP_PCT = 10.0  # the share of each method's units (or unit-scale rows) counted as its top


def register(iar_sub) -> None:
    p = iar_sub.add_parser("where", help="where each localizer puts memorization: blocks, scales",
                           description="Share of each localizer's top-k% units in each block (and, with "
                                       "--per-scale on a next-scale model, of its top-k% unit-scale rows in each "
                                       "scale), from the leaderboard's unit tables; writes WORK/where[-TAG].")
    _common(p, SECTIONS)
    p.add_argument("--methods", type=names, default=None, metavar="A,B,...",
                   help=f"localizers (default all: {', '.join(YARDSTICK_LOCALIZERS)})")
    p.add_argument("--per-scale", action="store_true", help="also per-scale tables (next-scale models; "
                                                            "WORK/localizers/NAME-per-scale)")
    p.add_argument("--top-pct", type=float, default=WHERE_TOP_PCT, metavar="K",
                   help=f"the top k%% counted (default {WHERE_TOP_PCT:g})")
    p.add_argument("--tag", default="", help="write WORK/where-TAG instead of WORK/where")
    p.set_defaults(func=run_where)


def methods_of(args) -> list[str]:
    methods = list(dict.fromkeys(args.methods)) if args.methods else list(YARDSTICK_LOCALIZERS)
    if not methods:
        raise UsageError(f"--methods is empty; allowed: {', '.join(YARDSTICK_LOCALIZERS)}")
    for m in methods:
        if m not in YARDSTICK_LOCALIZERS:
            raise UsageError(f"unknown localizer {m!r} in --methods; allowed: {', '.join(YARDSTICK_LOCALIZERS)}")
    return methods


def where_outputs(model, data, methods: list[str], cfgs: dict, here: Path, token_cache: Path, out: Path,
                  per_scale: bool, units: dict | None = None, top_pct: float = WHERE_TOP_PCT):
    """The where table of `methods` (unit tables from `units` or computed/reused in `here`), written as
    out/where.csv and out/where.png; per-scale tables (next-scale models, --per-scale) in
    here/localizers/NAME-per-scale, UnitMem's from here/localize."""
    from dataclasses import replace

    from memlab.iar.where import plot_where, where_table
    from memlab.io import write_text

    units = dict(units or {})
    for name in methods:
        if name not in units:
            cfgs_m = {**cfgs, "yardstick": replace(cfgs["yardstick"], localizer=name)}
            units[name], _ = _localizer_units(model, data, cfgs_m, here, token_cache)
    scales = None
    if per_scale and len(model.scale_slices()) > 1:
        from memlab.iar.compare import choose_sets
        from memlab.iar.localizers.common import COLUMNS
        from memlab.iar.localizers.scales import localize_scales_into
        from memlab.io import read_parquet

        ycfg = cfgs["yardstick"]
        sets = choose_sets(model, data, here, cfgs["extract"], ycfg.targets, ycfg.seed)
        scales = {}
        for name in methods:
            if name == "unitmem":  # the leaderboard's UnitMem (RUN/localize) scores every scale already
                scales[name] = read_parquet(here / "localize" / "unitmem.parquet", what="UnitMem table")[COLUMNS]
            else:
                scales[name], _ = localize_scales_into(here / "localizers" / f"{name}-per-scale", name, model, data,
                                                       sets, cfgs["localizer"])
    table = where_table({m: units[m] for m in methods}, scales, top_pct)
    write_text(out / "where.csv", table.to_csv(index=False))
    plot_where(table, out / "where.png", f"where the localizers put memorization ({model.arch}, top {top_pct:g}%)")
    return table


def run_where(args) -> int:
    methods = methods_of(args)
    cfgs = _configs(args, SECTIONS)
    check_tag("--tag", args.tag)
    check_float("--top-pct", args.top_pct, 0, 100, lo_open=True)
    from memlab.commands.iar_localize import _token_cache

    model, data, rd, stage = _open(args, f"where-{args.tag}" if args.tag else "where", "iar-where")
    rd.start({"methods": methods, "per_scale": args.per_scale, "top_pct": args.top_pct})
    table = where_outputs(model, data, methods, cfgs, stage.work_dir, _token_cache(args), rd.path, args.per_scale,
                          top_pct=args.top_pct)
    print_table(f"where ({model.arch}, {stage.name} stage, top {args.top_pct:g}%)", table)
    metrics = {"arch": model.arch, "stage": stage.columns(), "methods": methods, "top_pct": args.top_pct,
               "where": table.to_dict(orient="records")}
    rd.finish(metrics)
    return _emit(args, metrics)
