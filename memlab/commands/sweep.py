"""`memlab sweep run SPEC --out DIR` (resumable; local process pool or Ray) and `memlab sweep template`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run a grid of trainings (a phase diagram) from a TOML spec")
    cmds = p.add_subparsers(dest="sweep_command", metavar="{run,template}", parser_class=type(p))
    r = cmds.add_parser("run", help="run or resume a sweep; one table row per (cell, seed) in DIR")
    r.add_argument("spec", type=Path, help="sweep spec (TOML; see `memlab sweep template`)")
    r.add_argument("--out", type=Path, required=True, help="sweep directory (re-running resumes it)")
    r.add_argument("--backend", default="local", help="local (process pool, default) | ray")
    r.add_argument("--address", default=None, help="ray: address of an existing cluster (default: start a local one)")
    r.add_argument("--workers", type=int, default=None, help="parallel cells (default: the machine's CPU count)")
    r.add_argument("--retry-failed", action="store_true", help="run cells recorded as failed again")
    r.add_argument("--no-runs", action="store_true", help="do not keep each cell's train run directory")
    r.add_argument("--json", action="store_true", help="print one JSON object (rows, failures, summary) on stdout")
    r.set_defaults(func=run_sweep_cmd)
    t = cmds.add_parser("template", help="print a commented example spec")
    t.set_defaults(func=run_template)


def run_template(args) -> int:
    from memlab.sweep.template import TEMPLATE

    sys.stdout.write(TEMPLATE)
    return 0


def run_sweep_cmd(args) -> int:
    from memlab.errors import UsageError
    from memlab.sweep.runner import check_backend
    from memlab.sweep.spec import load_spec

    check_backend(args.backend, args.address)  # before the spec: a missing Ray is the clearest message
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    spec = load_spec(args.spec)

    from memlab.commands.phase import print_summary
    from memlab.io import to_json
    from memlab.sweep.phase import summarize_dir
    from memlab.sweep.runner import run_sweep

    table = run_sweep(spec, args.out, backend=args.backend, workers=args.workers, address=args.address,
                      retry_failed=args.retry_failed, save_runs=not args.no_runs)
    _, _, summary = summarize_dir(args.out)
    failed = int((table["status"] == "failed").sum()) if len(table) else 0
    print_summary(summary)
    print(f"{len(table)} rows ({failed} failed) in {args.out / 'results.parquet'}", file=sys.stderr)
    if args.json:
        print(to_json({"out": str(args.out), "rows": len(table), "failed": failed,
                       "cells": int(table["cell_id"].nunique()) if len(table) else 0, "configurations": summary},
                      indent=None))
    return 0
