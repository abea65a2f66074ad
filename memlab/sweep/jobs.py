"""Run a job spec (memlab/sweep/job_spec.py) through the sweep runner's backends:

    DIR/config.json           {"kind": "sweep-jobs", "spec": the validated jobs, "source": the TOML tables}
    DIR/rows/<job>.parquet    one row per finished job (status, error, wall_s, its command line); atomic
    DIR/results.parquet       all rows
    DIR/runs/<job>/           the job's run directory (its --out)
    DIR/logs/<job>.log        the job's stdout and stderr

A job is done exactly when its row file exists. Every job runs as its own `python -m memlab ...` process
(a command's process-wide settings, such as torch threads, stay its own); a job whose run directory
already holds metrics.json is recorded as done without running again, one left half-written by a killed
sweep is continued with --resume (or started again, for a job with `resume = false`). A job whose
`{run:...}` dependency failed fails too, without running."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from memlab.io import to_json
from memlab.sweep.job_spec import Job, JobSpec, parse_job_spec
from memlab.sweep.store import SweepStore

KIND = "sweep-jobs"
Launch = Callable[[list[str], Path, dict], int]  # (memlab argv, log file, environment) -> exit status


class JobStore(SweepStore):
    sort_keys = ["job"]


def launch_memlab(argv: list[str], log: Path, env: dict) -> int:
    """The real launcher: `python -m memlab ARGV` with stdout and stderr in `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        return subprocess.run([sys.executable, "-m", "memlab", *argv], stdout=fh, stderr=subprocess.STDOUT,
                              env=env, check=False).returncode


def last_error(log: Path) -> str:
    """The line that says why a job failed: memlab's own one-line error, else the last line of output."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    errors = [ln for ln in lines if ln.startswith("memlab: error:") or "Error" in ln.split(":")[0]]
    return (errors or lines or ["no output"])[-1][:500]


def job_row(job: Job, status: str, error: str, wall: float, code: int | None) -> dict[str, Any]:
    return {"job": job.name, "command": " ".join(job.command), "args_json": to_json(list(job.args), indent=None),
            "status": status, "error": error, "returncode": float("nan") if code is None else float(code),
            "out": f"runs/{job.name}" if job.writes_run else "", "wall_s": wall}


def execute_job(job: Job, root: Path, single_thread: bool, launch: Launch = launch_memlab) -> list[dict]:
    """Run one job to the end; never raises (a failure is a row with status 'failed' and the reason)."""
    start = time.perf_counter()
    run_dir = root / "runs" / job.name
    try:
        if not job.writes_run:  # writes into another job's run; those commands continue what they find
            log = root / "logs" / f"{job.name}.log"
            code = launch(job.argv(run_dir), log, _env(single_thread))
            return [job_row(job, "ok" if code == 0 else "failed", "" if code == 0 else last_error(log),
                            time.perf_counter() - start, code)]
        if (run_dir / "metrics.json").is_file():  # finished before a kill took its row
            return [job_row(job, "ok", "", 0.0, 0)]
        partial = run_dir.is_dir() and any(run_dir.iterdir())
        if partial and not job.resume:
            shutil.rmtree(run_dir)  # the runner's own directory: start it again
        log = root / "logs" / f"{job.name}.log"
        code = launch(job.argv(run_dir, resume=partial and job.resume), log, _env(single_thread))
        ok = code == 0 and (run_dir / "metrics.json").is_file()
        error = "" if ok else (last_error(log) if code else "exited 0 but wrote no metrics.json")
        return [job_row(job, "ok" if ok else "failed", error, time.perf_counter() - start, code)]
    except Exception as e:  # noqa: BLE001 - one job's trouble is recorded, not fatal to the others
        return [job_row(job, "failed", f"{type(e).__name__}: {e}", time.perf_counter() - start, None)]


def _env(single_thread: bool) -> dict:
    env = dict(os.environ)
    if single_thread:  # several jobs at once: one thread each (oversubscribed torch runs 5-15x slower)
        env.setdefault("OMP_NUM_THREADS", "1")
    return env


def crashed_job(job: Job, error: str) -> list[dict]:
    return [job_row(job, "failed", error, 0.0, None)]


def load_job_spec(raw: dict, out_dir: str | Path) -> JobSpec:
    return parse_job_spec(raw, Path(out_dir).resolve() / "runs")


def selected(spec: JobSpec, only: tuple[str, ...]) -> set[str]:
    """The jobs whose names match one of the `only` globs, and every job they need (transitively)."""
    import fnmatch

    names = {j.name for j in spec.jobs if any(fnmatch.fnmatchcase(j.name, g) for g in only)}
    if not names:
        from memlab.errors import UsageError

        raise UsageError(f"--only {','.join(only)} matches no job; the jobs are named like {spec.jobs[0].name!r}")
    needs = {j.name: j.needs for j in spec.jobs}
    todo = list(names)
    while todo:
        for n in needs[todo.pop()]:
            if n not in names:
                names.add(n)
                todo.append(n)
    return names


def run_jobs(spec: JobSpec, out_dir: str | Path, *, backend: str = "local", workers: int | None = None,
             address: str | None = None, retry_failed: bool = False, progress: bool = True, resume: bool = False,
             only: tuple[str, ...] = (), launch: Launch = launch_memlab) -> pd.DataFrame:
    """Run (or continue) every job of `spec` into `out_dir`, wave by wave (a job waits for the jobs whose
    run directories it reads); return the table, one row per job. `only`: name globs; the matching jobs and
    what they need run now, the others wait for a later call (the directory keeps the whole spec). Checked
    before the first write: the backend, the globs, that `out_dir` holds nothing or this same spec."""
    from tqdm.auto import tqdm

    from memlab.errors import UsageError
    from memlab.rundir import RunDir
    from memlab.sweep.runner import RUNNERS, check_backend, default_workers

    check_backend(backend, address)
    workers = workers or default_workers()
    if workers < 1:
        raise UsageError(f"--workers must be >= 1, got {workers}")
    chosen = selected(spec, only) if only else {j.name for j in spec.jobs}
    root = Path(out_dir).resolve()
    rd, mode = RunDir.open(out_dir, KIND, resume=resume, continue_same=True)
    store = JobStore(root)
    store.check_spec(spec.to_json())
    store.table()  # a damaged row file fails here, before any write
    if mode == "fresh":
        rd.start({"spec": spec.to_json(), "source": spec.source})
    rd.metrics_file.unlink(missing_ok=True)
    store.clean_tmp()

    bar = tqdm(total=len(chosen), desc=f"jobs {spec.name}", unit="job", file=sys.stderr, disable=not progress)
    for wave in ([j for j in w if j.name in chosen] for w in spec.levels()):
        status = {n: store.cell_status(n) for n in (j.name for j in spec.jobs)}
        todo, blocked = [], []
        for j in wave:
            if status[j.name] == "ok" or (status[j.name] == "failed" and not retry_failed):
                bar.update(1)
            elif all(status[n] == "ok" for n in j.needs):
                todo.append(j)
            else:
                blocked.append(j)
        for j in blocked:
            failed = next(n for n in j.needs if status[n] != "ok")
            store.write_cell(j.name, [job_row(j, "failed", f"needs {failed}, which failed", 0.0, None)])
            bar.update(1)
        n = min(workers, len(todo))
        tasks = [(j, root, n > 1, launch) for j in todo]
        for job, rows in (RUNNERS[backend](tasks, execute_job, crashed_job, n, address) if todo else ()):
            store.write_cell(job.name, rows)
            bar.update(1)
            if rows[0]["status"] == "failed":
                bar.write(f"job {job.name} failed: {rows[0]['error']} (log: {root / 'logs' / (job.name + '.log')})")
    bar.close()
    table = store.consolidate()
    failed = int((table["status"] == "failed").sum()) if len(table) else 0
    if len(table) == len(spec.jobs):  # finished only when every job of the spec has run
        rd.finish({"jobs": len(table), "failed": failed})
    return table
