"""`memlab phase summary DIR` and `memlab phase plot DIR --out PNG`: the observed transition of a sweep beside
the predicted crossover, as a table (stderr), one JSON object (stdout, --json) or figures."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from memlab.crossover.weighting import WEIGHTINGS  # numpy only: `memlab --help` stays free of JAX
from memlab.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("phase", help="observed vs predicted transition of a sweep; phase-diagram plots")
    cmds = p.add_subparsers(dest="phase_command", metavar="{summary,plot}", parser_class=type(p))
    s = cmds.add_parser("summary", help="per data configuration: observed transition (interval, bracket) and M*/N")
    s.add_argument("dir", type=Path, help="sweep directory written by `memlab sweep run`")
    s.add_argument("--boot", type=int, default=2000, help="bootstrap replicates over seeds and samples (default 2000)")
    s.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    s.add_argument("--weighting", default=None,
                   help=f"predict with this loss weighting instead of the sweep's ({' | '.join(WEIGHTINGS)}); cached in DIR")
    s.set_defaults(func=run_summary)
    q = cmds.add_parser("plot", help="ratio vs M/N, losses vs M/N, phase diagram, predicted vs observed")
    q.add_argument("dir", type=Path, help="sweep directory written by `memlab sweep run`")
    q.add_argument("--out", type=Path, required=True, help="output PNG (all four panels)")
    q.add_argument("--t", type=float, default=0.5, help="noise level of the loss panel (nearest grid t; default 0.5)")
    q.add_argument("--panels", action="store_true", help="also write each panel as its own PNG next to --out")
    q.add_argument("--boot", type=int, default=2000, help="bootstrap replicates (default 2000)")
    q.add_argument("--weighting", default=None, help="predict with this loss weighting instead of the sweep's")
    q.set_defaults(func=run_plot)


def _check(args) -> None:
    if args.weighting is not None and args.weighting not in WEIGHTINGS:
        raise UsageError(f"unknown --weighting {args.weighting!r}; allowed: {', '.join(WEIGHTINGS)}")
    if args.boot < 10:
        raise UsageError(f"--boot must be >= 10, got {args.boot}")
    if not (args.dir / "spec.json").is_file():
        raise UsageError(f"{args.dir} is not a sweep directory (no spec.json); run `memlab sweep run` first")


def _fmt(v, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _interval(iv, open_) -> str:
    lo = "<grid" if open_[0] else _fmt(iv[0])
    hi = ">grid" if open_[1] else _fmt(iv[1])
    return f"[{lo}, {hi}]"


def print_summary(summary: list[dict]) -> None:
    """Human table on stderr."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title="observed transition (ratio = 0.5) vs predicted crossover M*/N")
    for col in ("data", "N", "model", "sizes", "observed M/N", "95% interval", "bracket [<0.1, >=0.9]",
                "predicted M*/N", "pred. interval", "in interval", "last-checkpoint change"):
        t.add_column(col)
    for r in summary:
        o, p = r["observed"], r["predicted"]
        data = f"{r['dataset']} d={r['dim']:g} K={r['components']}" if r.get("dim") else f"{r['dataset']} K={r['components']}"
        t.add_row(data, str(r["n_train"]), str(r["model"]), str(len(o["sizes"])),
                  _fmt(o.get("m_over_n")) if o.get("m_over_n") is not None else o.get("where", "-"),
                  _interval(o.get("interval", [None, None]), o.get("interval_open", [False, False])),
                  f"[{_fmt(o.get('bracket', [None, None])[0])}, {_fmt(o.get('bracket', [None, None])[1])}]",
                  _fmt(p.get("m_over_n")) if not p.get("error") else f"error: {p['error'][:40]}",
                  f"[{_fmt(p['interval'][0])}, {_fmt(p['interval'][1])}]",
                  {True: "yes", False: "no", None: "-"}[r.get("prediction_in_interval")],
                  _fmt(o.get("max_change_last_checkpoint")))
    Console(file=sys.stderr, width=160).print(t)  # wide even when stderr is not a terminal


def run_summary(args) -> int:
    _check(args)
    from memlab.io import to_json
    from memlab.sweep.phase import summarize_dir

    table, _, summary = summarize_dir(args.dir, n_boot=args.boot, weighting=args.weighting)
    if not len(table):
        raise UsageError(f"{args.dir} has no finished rows yet")
    print_summary(summary)
    if args.json:
        print(to_json({"dir": str(args.dir), "rows": len(table), "configurations": summary}, indent=None))
    return 0


def run_plot(args) -> int:
    _check(args)
    if args.out.suffix.lower() != ".png":
        raise UsageError(f"--out must be a .png file, got {args.out}")
    if not 0 < args.t < 1:
        raise UsageError(f"--t must be in (0, 1), got {args.t}")
    from memlab.sweep.phase import summarize_dir
    from memlab.sweep.plot import plot_sweep, save_panels

    table, predictions, summary = summarize_dir(args.dir, n_boot=args.boot, weighting=args.weighting)
    if not len(table):
        raise UsageError(f"{args.dir} has no finished rows yet")
    paths = [plot_sweep(table, summary, predictions, args.out, t=args.t)]
    if args.panels:
        paths += save_panels(table, summary, predictions, args.out.parent, t=args.t, prefix=args.out.stem + "_")
    for p in paths:
        print(f"wrote {p}", file=sys.stderr)
    return 0
