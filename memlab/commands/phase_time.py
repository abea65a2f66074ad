"""`memlab phase time DIR [--json] [--out FIG.png]`: the training-time axis of a sweep (sweep.timescales):
per cell the generalization and memorization times, per series a fit of t_mem ~ c N^a with an interval;
a table on stderr, one JSON object on stdout (--json), and with --out the figure plus FIG.json beside it."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from memlab.errors import UsageError, check_float, check_int
from memlab.options import Section, add_config_flag, add_section, load_config_file, option, resolve


@dataclass(frozen=True)
class TimeConfig:
    boot: int = option(1000, "bootstrap replicates over seeds of each cell's memorization time")
    gen_rtol: float = option(0.01, "generalization time: first checkpoint whose test loss is within this "
                                   "relative tolerance of its minimum, in [0, 1] (0: the minimum itself)")
    conf: float = option(0.95, "confidence level of the exponent's interval, in (0, 1)")

    def __post_init__(self):
        check_int("boot", self.boot, 10)
        check_float("gen_rtol", self.gen_rtol, 0.0, 1.0)
        check_float("conf", self.conf, 0.0, 1.0, lo_open=True, hi_open=True)


TIME = [Section("time", TimeConfig, title="training-time analysis")]


def register(cmds: argparse._SubParsersAction) -> None:
    t = cmds.add_parser("time", help="generalization and memorization time per cell; t_mem ~ N^a fit; collapse plot")
    t.add_argument("dir", type=Path, help="sweep directory written by `memlab sweep run` (runs with checkpoints)")
    t.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    t.add_argument("--out", type=Path, default=None, help="output PNG; the JSON is written beside it (.json)")
    add_config_flag(t, ["time"])
    add_section(t, TIME[0])
    t.set_defaults(func=run_time)


def analyse(root: Path, cfg: TimeConfig) -> dict:
    """The JSON object of the command; a UsageError when DIR has no cell with ratio checkpoints."""
    from memlab.sweep.store import SweepStore
    from memlab.sweep.timescales import fit_series, timescales

    store = SweepStore(root)
    spec = store.read_spec()
    table = store.table()
    if not len(table):
        raise UsageError(f"{root} has no finished rows yet")
    records, missing = timescales(table, gen_rtol=cfg.gen_rtol, n_boot=cfg.boot,
                                  fixed="m_over_n" if spec.get("unit") == "fraction" else "size")
    if not records:
        raise UsageError(f"{root} has no checkpoints of the memorization ratio in its rows (checkpoints_json)")
    return {"dir": str(root), "level": 0.5, "gen_rtol": cfg.gen_rtol,
            "t_gen": "first checkpoint with mean test loss within gen_rtol of its minimum",
            "t_gen_median_t": "the same rule per noise level (t_gen_per_t; a level still falling at the last "
                              "checkpoint is censored), median over levels",
            "t_mem": "mean ratio over seeds first reaches 0.5, interpolated in log(step); interval = bracketing "
                     "checkpoints, seed_interval = 95% bootstrap over seeds",
            "fits": fit_series(records, cfg.conf), "cells": records, "cells_without_checkpoints": missing}


def _print_table(result: dict) -> None:
    def f(v):
        return "-" if v is None else f"{v:.4g}"

    print(f"{'series':<48} {'N':>6} {'seeds':>5} {'t_gen':>8} {'t_gen per t (median)':>20} {'t_mem':>9} "
          f"{'bracket':>20} status", file=sys.stderr)
    for r in result["cells"]:
        b = r["t_mem_bracket"]
        print(f"{r['series']:<48} {r['n_train']:>6} {r['seeds']:>5} {f(r['t_gen']):>8} "
              f"{f(r.get('t_gen_median_t')):>20} {f(r['t_mem']):>9} "
              f"{'[' + f(b[0]) + ', ' + f(b[1]) + ']':>20} {r['status']}", file=sys.stderr)

    def ci(fit):
        iv = fit["interval"]
        return f"{int(fit['confidence'] * 100)}% [{iv[0]:.3f}, {iv[1]:.3f}]" if iv else "no interval"

    for fit in result["fits"]:
        print(f"{fit['series']}: t_mem ~ N^{f(fit['exponent'])} {ci(fit)} over "
              f"{fit['n_points']} crossed cells; censored: {len(fit['censored'])}", file=sys.stderr)
        g = fit.get("t_gen_median_t_fit")
        if g and g["n_points"] >= 2:
            print(f"{'':<4}t_gen (median over t) ~ N^{f(g['exponent'])} {ci(g)} over {g['n_points']} cells",
                  file=sys.stderr)
    if result["cells_without_checkpoints"]:
        print(f"cells without ratio checkpoints: {len(result['cells_without_checkpoints'])}", file=sys.stderr)


def run_time(args) -> int:
    from memlab.rundir import RunDir, check_writable

    cfg = resolve(args, TIME, toml=load_config_file(args))["time"]
    RunDir.existing(args.dir, "sweep", what="DIR")
    if args.out is not None:
        if args.out.suffix.lower() != ".png":
            raise UsageError(f"--out must be a .png file, got {args.out}")
        check_writable(args.out, "--out", is_dir=False)
    result = analyse(args.dir, cfg)  # every refusal comes before anything is written
    _print_table(result)
    from memlab.io import to_json, write_json

    if args.out is not None:
        from memlab.sweep.time_plot import plot_time

        plot_time(result["cells"], result["fits"], args.out)
        write_json(args.out.with_suffix(".json"), result)
        print(f"wrote {args.out} and {args.out.with_suffix('.json')}", file=sys.stderr)
    if args.json:
        print(to_json(result, indent=None))
    return 0
