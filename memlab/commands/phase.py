"""`memlab phase summary DIR` and `memlab phase plot DIR --out PNG`: the observed transition of a sweep beside
the predicted crossover, as a table (stderr), one JSON object (stdout, --json) or figures."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dataclasses import dataclass

from memlab.crossover.weighting import WEIGHTINGS  # numpy only: `memlab --help` stays free of JAX
from memlab.errors import UsageError, check_choice, check_float, check_int
from memlab.options import Section, add_config_flag, add_section, load_config_file, resolve, option


@dataclass(frozen=True)
class PhaseConfig:
    boot: int = option(2000, "bootstrap replicates over seeds and samples")
    weighting: str | None = option(None, f"predict with this loss weighting instead of the sweep's "
                                         f"({', '.join(WEIGHTINGS)}); cached in DIR", shown="the sweep's")
    t: float = option(0.5, "noise level of the loss panel, in (0, 1) (nearest grid t)")

    def __post_init__(self):
        check_int("boot", self.boot, 10)
        if self.weighting is not None:
            check_choice("weighting", self.weighting, WEIGHTINGS)
        check_float("t", self.t, 0.0, 1.0, lo_open=True, hi_open=True)


SUMMARY = [Section("phase", PhaseConfig, skip=("t",), title="analysis")]
PLOT = [Section("phase", PhaseConfig, title="analysis")]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("phase", help="observed vs predicted transition of a sweep; phase-diagram plots")
    cmds = p.add_subparsers(dest="phase_command", metavar="{summary,plot,time}", parser_class=type(p))
    s = cmds.add_parser("summary", help="per data configuration: observed transition (interval, bracket) and M*/N")
    s.add_argument("dir", type=Path, help="sweep directory written by `memlab sweep run`")
    s.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    add_config_flag(s, ["phase"])
    add_section(s, SUMMARY[0])
    s.set_defaults(func=run_summary)
    q = cmds.add_parser("plot", help="ratio vs M/N, losses vs M/N, phase diagram, predicted vs observed")
    q.add_argument("dir", type=Path, help="sweep directory written by `memlab sweep run`")
    q.add_argument("--out", type=Path, required=True, help="output PNG (all four panels)")
    q.add_argument("--panels", action="store_true", help="also write each panel as its own PNG next to --out")
    add_config_flag(q, ["phase"])
    add_section(q, PLOT[0])
    q.set_defaults(func=run_plot)
    from memlab.commands.phase_time import register as register_time

    register_time(cmds)
    p.set_defaults(func=lambda a: (p.print_help(sys.stderr), 2)[1])


def _check(args, sections) -> PhaseConfig:
    from memlab.rundir import RunDir

    cfg = resolve(args, sections, toml=load_config_file(args))["phase"]
    RunDir.existing(args.dir, "sweep", what="DIR")
    if cfg.weighting is not None:  # its predictions are cached in DIR
        from memlab.rundir import check_writable

        check_writable(args.dir, "DIR")
    return cfg


def print_summary(summary: list[dict]) -> None:
    """Human table on stderr, and a line naming the configurations that had not converged."""
    from rich.console import Console

    from memlab.sweep.table import convergence_note, summary_table

    console = Console(file=sys.stderr, width=160)  # wide even when stderr is not a terminal
    console.print(summary_table(summary))
    note = convergence_note(summary)
    if note:
        console.print(note, style="bold red", soft_wrap=True, markup=False)


def run_summary(args) -> int:
    cfg = _check(args, SUMMARY)
    from memlab.io import to_json
    from memlab.sweep.phase import summarize_dir

    table, _, summary = summarize_dir(args.dir, n_boot=cfg.boot, weighting=cfg.weighting)
    if not len(table):
        raise UsageError(f"{args.dir} has no finished rows yet")
    print_summary(summary)
    if args.json:
        print(to_json({"dir": str(args.dir), "rows": len(table), "configurations": summary}, indent=None))
    return 0


def run_plot(args) -> int:
    cfg = _check(args, PLOT)
    if args.out.suffix.lower() != ".png":
        raise UsageError(f"--out must be a .png file, got {args.out}")
    from memlab.rundir import check_writable

    check_writable(args.out, "--out", is_dir=False)
    from memlab.sweep.phase import summarize_dir
    from memlab.sweep.plot import plot_sweep, save_panels

    table, predictions, summary = summarize_dir(args.dir, n_boot=cfg.boot, weighting=cfg.weighting)
    if not len(table):
        raise UsageError(f"{args.dir} has no finished rows yet")
    paths = [plot_sweep(table, summary, predictions, args.out, t=cfg.t)]
    if args.panels:
        paths += save_panels(table, summary, predictions, args.out.parent, t=cfg.t, prefix=args.out.stem + "_")
    for p in paths:
        print(f"wrote {p}", file=sys.stderr)
    return 0
