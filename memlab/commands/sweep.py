"""`memlab sweep run [SPEC] --out DIR` (resumable; local process pool or Ray) and `memlab sweep template`.
A SPEC with [[job]] tables is a job spec (memlab/sweep/job_spec.py): named memlab command lines, run by the
same runner."""

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
                                    "`--resume --out DIR` continues it with the spec saved in DIR. A SPEC "
                                    "with [[job]] tables runs named memlab commands (retraining jobs) "
                                    "instead: one row per job, each job's run in DIR/runs/NAME.")
    r.add_argument("spec", type=Path, nargs="?", default=None,
                   help="sweep spec (TOML; see `memlab sweep template` and `memlab sweep template --jobs`); "
                        "omit with --resume")
    r.add_argument("--out", type=Path, required=True, help="sweep directory (re-running resumes it)")
    r.add_argument("--resume", action="store_true", help="continue the sweep in --out (its own spec)")
    add_config_flag(r, [s.name for s in SECTIONS])
    for section in SECTIONS:
        add_section(r, section)
    r.add_argument("--only", default=None, metavar="GLOB[,GLOB...]",
                   help="job specs: run only the jobs whose names match (and the jobs they need); the others "
                        "stay for a later run of the same spec")
    r.add_argument("--json", action="store_true", help="print one JSON object (rows, failures, summary) on stdout")
    r.set_defaults(func=run_sweep_cmd)
    t = cmds.add_parser("template", help="print a commented example spec")
    t.add_argument("--jobs", action="store_true", help="an example job spec (named memlab commands) instead")
    t.set_defaults(func=run_template)
    p.set_defaults(func=lambda a: (p.print_help(sys.stderr), 2)[1])


def run_template(args) -> int:
    from memlab.sweep.template import JOBS_TEMPLATE, TEMPLATE

    sys.stdout.write(JOBS_TEMPLATE if args.jobs else TEMPLATE)
    return 0


def _spec(args):
    """The spec from SPEC, or with --resume and no SPEC, the one saved in --out: a SweepSpec, or a JobSpec
    when the TOML has [[job]] tables."""
    from memlab.config import load_toml
    from memlab.errors import UsageError
    from memlab.rundir import RunDir, kind_of
    from memlab.sweep.job_spec import is_job_spec
    from memlab.sweep.jobs import KIND, load_job_spec
    from memlab.sweep.spec import parse_spec

    if args.spec is not None:
        raw = load_toml(args.spec)
        return load_job_spec(raw, args.out) if is_job_spec(raw) else parse_spec(raw)
    if not args.resume:
        raise UsageError("sweep run needs a SPEC file, or --resume --out DIR to continue the sweep in DIR")
    from memlab.sweep.runner import LEGACY

    jobs = args.out.is_dir() and kind_of(args.out) == KIND
    rd, _ = RunDir.open(args.out, KIND if jobs else "sweep", resume=True)
    if not rd.config_file.is_file():
        raise UsageError(LEGACY.format(dir=rd.path))
    saved = rd.saved_config()
    if not isinstance(saved.get("source"), dict):
        raise UsageError(f"malformed {rd.config_file}: no 'source' table (the spec the sweep was run with)")
    return load_job_spec(saved["source"], args.out) if jobs else parse_spec(saved["source"])


def run_jobs_cmd(args, runner, spec) -> int:
    from memlab.io import to_json
    from memlab.sweep.jobs import run_jobs

    only = tuple(g for g in (args.only or "").split(",") if g)
    table = run_jobs(spec, args.out, backend=runner.backend, workers=runner.workers, address=runner.address,
                     retry_failed=runner.retry_failed, resume=args.resume, only=only)
    failed = table[table["status"] == "failed"]
    for _, row in table.iterrows():
        print(f"{row['job']:<40} {row['status']:<7} {row['wall_s']:>8.1f} s  {row['error']}", file=sys.stderr)
    print(f"{len(table)} jobs ({len(failed)} failed) in {args.out / 'results.parquet'}; runs in {args.out / 'runs'}",
          file=sys.stderr)
    if args.json:
        print(to_json({"out": str(args.out), "jobs": len(table), "failed": len(failed),
                       "rows": table[["job", "status", "error", "wall_s", "out"]].to_dict("records")}, indent=None))
    return 0


def run_sweep_cmd(args) -> int:
    from memlab.sweep.job_spec import JobSpec
    from memlab.sweep.runner import check_backend

    runner = resolve(args, SECTIONS, toml=load_config_file(args))["runner"]
    check_backend(runner.backend, runner.address)  # before the spec: a missing Ray is the clearest message
    spec = _spec(args)
    if args.only is not None and not isinstance(spec, JobSpec):
        from memlab.errors import UsageError

        raise UsageError("--only selects jobs of a job spec ([[job]] tables); a cell sweep runs whole")
    if isinstance(spec, JobSpec):
        if not runner.save_runs:
            from memlab.errors import UsageError

            raise UsageError("--no-runs does not apply to a job spec: a job's run directory is its result")
        return run_jobs_cmd(args, runner, spec)

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
