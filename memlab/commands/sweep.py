"""`memlab sweep run [SPEC] --out DIR` (resumable; local process pool or Ray) and `memlab sweep template`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from memlab.options import Section, add_config_flag, add_section, load_config_file, resolve
from memlab.sweep.spec import RunnerConfig

SECTIONS = [Section("runner", RunnerConfig, title="runner")]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run a grid of trainings (a phase diagram) from a TOML spec")
    cmds = p.add_subparsers(dest="sweep_command", metavar="{run,template}", parser_class=type(p))
    r = cmds.add_parser("run", help="run or resume a sweep; one table row per (cell, seed) in DIR",
                        description="Run the sweep SPEC into DIR. Re-running the same SPEC continues it; "
                                    "`--resume --out DIR` continues it with the spec saved in DIR.")
    r.add_argument("spec", type=Path, nargs="?", default=None,
                   help="sweep spec (TOML; see `memlab sweep template`); omit with --resume")
    r.add_argument("--out", type=Path, required=True, help="sweep directory (re-running resumes it)")
    r.add_argument("--resume", action="store_true", help="continue the sweep in --out (its own spec)")
    add_config_flag(r, [s.name for s in SECTIONS])
    for section in SECTIONS:
        add_section(r, section)
    r.add_argument("--json", action="store_true", help="print one JSON object (rows, failures, summary) on stdout")
    r.set_defaults(func=run_sweep_cmd)
    t = cmds.add_parser("template", help="print a commented example spec")
    t.set_defaults(func=run_template)
    p.set_defaults(func=lambda a: (p.print_help(sys.stderr), 2)[1])


def run_template(args) -> int:
    from memlab.sweep.template import TEMPLATE

    sys.stdout.write(TEMPLATE)
    return 0


def _spec(args):
    """The spec from SPEC, or with --resume and no SPEC, the one saved in --out."""
    from memlab.errors import UsageError
    from memlab.rundir import RunDir
    from memlab.sweep.spec import load_spec, parse_spec

    if args.spec is not None:
        return load_spec(args.spec)
    if not args.resume:
        raise UsageError("sweep run needs a SPEC file, or --resume --out DIR to continue the sweep in DIR")
    from memlab.sweep.runner import LEGACY

    rd, _ = RunDir.open(args.out, "sweep", resume=True)
    if not rd.config_file.is_file():
        raise UsageError(LEGACY.format(dir=rd.path))
    saved = rd.saved_config()
    if not isinstance(saved.get("source"), dict):
        raise UsageError(f"malformed {rd.config_file}: no 'source' table (the spec the sweep was run with)")
    return parse_spec(saved["source"])


def run_sweep_cmd(args) -> int:
    from memlab.sweep.runner import check_backend

    runner = resolve(args, SECTIONS, toml=load_config_file(args))["runner"]
    check_backend(runner.backend, runner.address)  # before the spec: a missing Ray is the clearest message
    spec = _spec(args)

    from memlab.commands.phase import print_summary
    from memlab.io import to_json
    from memlab.sweep.phase import summarize_dir
    from memlab.sweep.runner import run_sweep

    table = run_sweep(spec, args.out, backend=runner.backend, workers=runner.workers, address=runner.address,
                      retry_failed=runner.retry_failed, save_runs=runner.save_runs, resume=args.resume)
    _, _, summary = summarize_dir(args.out)
    failed = int((table["status"] == "failed").sum()) if len(table) else 0
    print_summary(summary)
    print(f"{len(table)} rows ({failed} failed) in {args.out / 'results.parquet'}", file=sys.stderr)
    if args.json:
        print(to_json({"out": str(args.out), "rows": len(table), "failed": failed,
                       "cells": int(table["cell_id"].nunique()) if len(table) else 0, "configurations": summary},
                      indent=None))
    return 0
