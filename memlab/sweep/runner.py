"""Sweep runner: every cell is a `memlab train` run (named jobs, memlab/sweep/jobs.py, use the same backends), executed by a backend (`local`: a process pool sized to
the machine; `ray`: a local Ray instance or an existing cluster via `address`). The driver alone writes the
store, so it works the same on a cluster without a shared file system; results are written as each cell
finishes, so a killed sweep resumes where it stopped. Optional adaptive refinement adds sizes between the
last size with mean ratio < 0.1 and the first with mean ratio >= 0.9."""

from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterable, Iterator

import pandas as pd

from memlab.errors import UsageError
from memlab.sweep import cells as cells_mod
from memlab.sweep.spec import Cell, SweepSpec, absolute_sizes, data_key, make_cells, refined_sizes
from memlab.sweep.store import SweepStore

BACKENDS = ("local", "ray")
# Cell ids hash the resolved training config, whose defaults have changed since (the mixture's lr), so an
# old sweep's cells would be re-trained beside its old rows: refuse instead of mixing two settings.
LEGACY = ("{dir} is a sweep from before run kinds (spec.json, no config.json); its cells were planned with older "
          "defaults and cannot be continued: run its spec into a new directory (`memlab phase` still reads it)")
RAY_HINT = "the ray backend needs Ray: pip install -e '.[ray]'  (or pip install 'ray[default]')"


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


# --- local backend -------------------------------------------------------------------------------------

def _worker_init(parent_pid: int, single_thread: bool) -> None:
    # Several JAX processes on few cores: one XLA thread each avoids oversubscription.
    if single_thread and "XLA_FLAGS" not in os.environ:
        os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    # On a GPU each JAX process reserves 75% of its memory by default: with several workers on one device all
    # but the first would fail. Allocate on demand instead (a no-op on CPU).
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

    # A worker whose driver was killed (kill -9 leaves pool workers orphaned) exits instead of running on.
    def watch():
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True).start()


# A backend runs tasks, each a tuple of arguments to `execute` whose first element is the item (a Cell, a
# named Job), and yields (item, rows) as each finishes; `crashed(item, error)` gives the rows of a task whose
# worker died. Cells and jobs share the backends; only `execute` and `crashed` differ.
Task = tuple
Execute = Callable[..., list]
Crashed = Callable[[object, str], list]


def _run_local(tasks: list[Task], execute: Execute, crashed: Crashed, workers: int, address) -> Iterator:
    if workers == 1:  # in-process: no pickling, same numbers, easiest to debug
        for task in tasks:
            yield task[0], execute(*task)
        return
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                               initializer=_worker_init, initargs=(os.getpid(), True))
    try:
        futures = {pool.submit(execute, *task): task[0] for task in tasks}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                item = futures[f]
                try:
                    rows = f.result()
                except Exception as e:  # noqa: BLE001 - a dead worker process (e.g. out of memory)
                    rows = crashed(item, f"worker failed: {type(e).__name__}: {e}")
                yield item, rows
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# --- ray backend ---------------------------------------------------------------------------------------

def import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError(RAY_HINT) from None
    return ray


def _run_ray(tasks: list[Task], execute: Execute, crashed: Crashed, workers: int, address) -> Iterator:
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        # A local instance: Ray runs its workers at nice 15 by default, which starves them on a shared
        # machine (measured: ~3% CPU each next to other jobs); the process pool runs at nice 0, so does this.
        kwargs = dict(address=address) if address else dict(num_cpus=workers, include_dashboard=False)
        if not address:
            os.environ.setdefault("RAY_worker_niceness", "0")  # read by the raylet this process starts
        ray.init(log_to_driver=False, configure_logging=False, **kwargs)
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(execute)
        refs = {remote.remote(*task): task[0] for task in tasks}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=1.0)  # a timeout keeps Ctrl-C responsive
            for ref in done:
                item = refs[ref]
                try:
                    rows = ray.get(ref)
                except Exception as e:  # noqa: BLE001 - a lost worker or node
                    rows = crashed(item, f"ray task failed: {type(e).__name__}: {str(e).splitlines()[0]}")
                yield item, rows
    finally:
        if started:
            ray.shutdown()


RUNNERS = {"local": _run_local, "ray": _run_ray}


def _failed(cell: Cell, error: str) -> list[dict]:
    return [cells_mod.failed_row(cell, s, error) for s in cells_mod.seed_list(cell)]


# --- the driver ----------------------------------------------------------------------------------------

def check_backend(backend: str, address: str | None) -> None:
    """Fail fast, before anything is written, on an unknown backend or a missing Ray."""
    if backend not in BACKENDS:
        raise UsageError(f"unknown --backend {backend!r}; allowed: {', '.join(BACKENDS)}")
    if address and backend != "ray":
        raise UsageError("--address joins a Ray cluster; it needs --backend ray")
    if backend == "ray":
        import_ray()


def plan(spec: SweepSpec, resolve_train: Callable[[dict], dict] = cells_mod.resolve_train) -> list[Cell]:
    """The coarse cells of every data configuration (validates every training config on the way)."""
    return [c for cfg in spec.data for c in make_cells(spec, cfg, absolute_sizes(spec, cfg), resolve_train)]


def run_sweep(spec: SweepSpec, out_dir: str | Path, *, backend: str = "local", workers: int | None = None,
              address: str | None = None, cell_fn=cells_mod.train_cell,
              resolve_train: Callable[[dict], dict] = cells_mod.resolve_train,
              predict_fn=cells_mod.predict_data, resolve_predict=cells_mod.resolve_predict,
              retry_failed: bool = False, save_runs: bool = True, progress: bool = True,
              resume: bool = False) -> pd.DataFrame:
    """Run (or resume) a sweep into `out_dir` and return its table (one row per cell and seed). Re-running
    the same spec into its directory continues it; `resume` requires that the directory holds a sweep.

    Everything is validated before the first write: the backend, every cell's training config, every
    prediction config, and that `out_dir` can be written and does not hold a different sweep or another
    kind of run."""
    from memlab.rundir import RunDir

    check_backend(backend, address)
    workers = workers or default_workers()
    if workers < 1:
        raise UsageError(f"--workers must be >= 1, got {workers}")
    coarse = plan(spec, resolve_train)
    pred_cfgs = {data_key(c.data): resolve_predict(spec.predict, c.train, c.data) for c in coarse}
    rd, mode = RunDir.open(out_dir, "sweep", resume=resume, continue_same=True)
    if mode != "fresh" and not rd.config_file.is_file():
        raise UsageError(LEGACY.format(dir=rd.path))
    store = SweepStore(out_dir)
    store.check_spec(spec.to_json())
    store.table()  # every saved row file and prediction is read once: damage fails here, before any write
    for cfg in spec.data:
        store.read_prediction(data_key(cfg))

    if mode == "fresh":
        rd.start({"spec": spec.to_json(), "source": spec.source})
    rd.metrics_file.unlink(missing_ok=True)  # running again: not finished until the end
    store.clean_tmp()
    _predict_all(spec, store, pred_cfgs, predict_fn, progress)

    from tqdm.auto import tqdm

    # counts table rows (one per cell and seed), as the summary does
    bar = tqdm(total=0, desc=f"sweep {spec.name}", unit="row", file=sys.stderr, disable=not progress)
    stage_cells: Iterable[Cell] = coarse
    for stage in range(spec.refine_rounds + 1):
        if stage > 0:
            stage_cells = _refine(spec, store, resolve_train, stage)
            if not stage_cells:
                break
        _run_stage(list(stage_cells), store, backend, workers, address, cell_fn, retry_failed, save_runs, bar)
        store.consolidate()
    bar.close()
    table = store.consolidate()
    failed = int((table["status"] == "failed").sum()) if len(table) else 0
    rd.finish({"rows": len(table), "failed": failed, "cells": int(table["cell_id"].nunique()) if len(table) else 0})
    return table


def _run_stage(cells: list[Cell], store: SweepStore, backend, workers, address, cell_fn, retry_failed,
               save_runs, bar) -> None:
    todo = [c for c in cells if not store.is_done(c.cell_id)
            or (retry_failed and store.cell_status(c.cell_id) == "failed")]
    rows_of = lambda c: len(cells_mod.seed_list(c))  # noqa: E731
    bar.total += sum(rows_of(c) for c in cells)
    bar.update(sum(rows_of(c) for c in cells) - sum(rows_of(c) for c in todo))
    bar.refresh()
    if not todo:
        return
    tasks = [(c, store.runs_dir / c.cell_id if save_runs else None, cell_fn) for c in todo]
    for cell, rows in RUNNERS[backend](tasks, cells_mod.execute_cell, _failed, min(workers, len(todo)), address):
        store.write_cell(cell.cell_id, rows)
        bar.update(len(rows))
        if rows and rows[0]["status"] == "failed":
            bar.write(f"cell {cell.cell_id} (N={cell.data.n_train}, size={cell.size}) failed: {rows[0]['error']}")


def _refine(spec: SweepSpec, store: SweepStore, resolve_train, stage: int) -> list[Cell]:
    """New cells between the bracket of every data configuration, from the rows finished so far."""
    df = store.table()
    if not len(df):
        return []
    # Only earlier stages: a resumed run must choose the same sizes even if this stage half-finished.
    ok = df[(df["status"] != "failed") & (df["stage"] < stage)]
    new: list[Cell] = []
    for cfg in spec.data:
        rows = ok[ok["data_key"] == data_key(cfg)]
        if not len(rows):
            continue
        mean = rows.groupby("size")["memorization_ratio"].mean()
        sizes = refined_sizes([int(s) for s in mean.index], list(mean.values), spec.refine_points)
        new += make_cells(spec, cfg, sizes, resolve_train, stage)
    return new


def _predict_all(spec: SweepSpec, store: SweepStore, pred_cfgs: dict, predict_fn, progress: bool) -> None:
    """The predicted crossover of every data configuration (cheap next to training; done in the driver)."""
    for cfg in spec.data:
        key = data_key(cfg)
        old = store.read_prediction(key)
        if old is not None and not old.get("error"):
            continue  # a failed prediction is tried again on the next run
        if progress:
            print(f"predicting the crossover for N={cfg.n_train} ({cfg.dataset})", file=sys.stderr)
        try:
            pred = predict_fn(cfg, pred_cfgs[key])
        except Exception as e:  # noqa: BLE001 - recorded; the sweep goes on without this prediction
            pred = {"error": f"{type(e).__name__}: {e}", "m_star_over_n": None, "interval": [None, None]}
        store.write_prediction(key, pred)
