"""Cells per hour of the paper's GMM sweep, extrapolated from a few representative cells.

The sweep: d in {30, 40, 50, 60}, K in {3, 6, 9, 12}, N in {50, 100, 150, 200}, mixture estimator with
M/N in {0.1, ..., 1.0} (the sizes of `memlab sweep template`), 3 seeds per cell trained together
(seed_mode 'vmap' unless --seed-mode says otherwise), 50,000 steps, the TrainConfig defaults otherwise
(16 noise draws per point, full batch, 8 checkpoints, 200 samples per seed): 640 cells.

Method. For each representative cell (d, K, N, M):
  - rate: a compiled Trainer with the sweep's chunk length (256 steps), timed over --steps steps after a
    compile-and-warm-up chunk: seconds per step (all seeds at once);
  - overhead: one whole cell (`memlab.sweep.cells.train_cell`, what a sweep worker runs) with --overhead-steps
    steps, minus those steps at the measured rate: data, compilation, the 8 checkpoint evaluations
    (per-t losses, DDIM samples, memorization ratio with its bootstrap).
A cell's time is overhead + 50,000 x seconds per step. Both parts are interpolated linearly in the matmul
work w = seeds x N x draws x M x d of one step (K does not enter the mixture estimator's cost) between the
representative cells, which include the sweep's smallest and largest w (so nothing is extrapolated in w),
and summed over the 640 cells: hours for the whole sweep in one process running cells one after another,
and cells per hour. (A straight-line fit a + b w missed the small cells by up to 86%: their steps cost a
fixed few milliseconds whatever their size.) The persistent compilation cache is not used (a first run of
a sweep compiles every cell's shapes). Short timed runs carry more per-call dispatch than 50,000-step runs,
so on an accelerator the estimate errs on the slow side.

    python benchmarks/gmm_sweep.py [--out benchmarks/results/gmm_sweep.json] [--steps N] [--seed-mode vmap]
    python benchmarks/gmm_sweep.py --reuse OLD.json   # the estimate again from OLD.json's measurements

Runs unchanged on CPU or GPU (JAX's default backend); records the device, backend, precision and the load
average. Writes one JSON object (also printed on stdout).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

DIMS, COMPONENTS, NS = (30, 40, 50, 60), (3, 6, 9, 12), (50, 100, 150, 200)
FRACTIONS = tuple(round(0.1 * i, 1) for i in range(1, 11))
STEPS, SEEDS = 50_000, 3
# (d, K, N, M): the smallest and the largest cell and two between them
REPRESENTATIVE = ((30, 3, 50, 5), (40, 6, 100, 50), (50, 9, 150, 120), (60, 12, 200, 200))
METHOD = ("cell time = overhead + steps x s_per_step, each interpolated linearly in the step's matmul work "
          "seeds*N*draws*M*d between the representative cells, summed over the sweep; one process, cells one "
          "after another")


def sweep_cells() -> list[tuple[int, int, int, int]]:
    return [(d, k, n, max(1, round(f * n))) for d in DIMS for k in COMPONENTS for n in NS for f in FRACTIONS]


def train_fields(size: int, steps: int, seed_mode: str) -> dict:
    return {"model": "mixture", "size": size, "steps": steps, "lr": 1e-2, "seeds": SEEDS, "seed_mode": seed_mode,
            "samples": 200}


def work(n: int, m: int, d: int, draws: int) -> float:
    return float(SEEDS * n * draws * m * d)


def time_rate(data_cfg, fields: dict, steps: int) -> dict:
    """Seconds per training step (all seeds) of a compiled trainer with the sweep's chunk length."""
    import jax

    from memlab.config import load_dataset
    from memlab.diffusion.models import build, init_params
    from memlab.diffusion.process import default_grid
    from memlab.diffusion.rng import TAG_TRAIN, key_data, seed_key
    from memlab.diffusion.run import TrainConfig
    from memlab.diffusion.train import Trainer, chunk_length, stack
    from memlab.sweep.cells import resolve_train

    cfg = TrainConfig.from_flat(resolve_train(dict(fields, steps=STEPS)), "[train]")
    ds = load_dataset(data_cfg)
    den = build(cfg.model, ds)
    length = chunk_length(STEPS, cfg.eval.n_checkpoints)
    trainer = Trainer(den, cfg.optim, ds.train_NxD, default_grid(), SEEDS, length)
    state = stack([trainer.init_state(init_params(den, cfg.model.init, ds, s), key_data(seed_key(s, TAG_TRAIN)))
                   for s in range(SEEDS)])
    t0 = time.perf_counter()
    state = jax.block_until_ready(trainer.advance(state, length))  # compile + one chunk
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(trainer.advance(state, steps))
    secs = time.perf_counter() - t0
    return {"seed_mode": trainer.mode, "chunk": length, "timed_steps": steps, "s_per_step": secs / steps,
            "compile_and_first_chunk_s": first, "draws": cfg.optim.draws}


def time_overhead(data_cfg, fields: dict, steps: int, s_per_step: float) -> dict:
    from memlab.sweep.cells import resolve_train, train_cell

    t0 = time.perf_counter()
    res = train_cell(data_cfg, resolve_train(dict(fields, steps=steps)), None, False)
    wall = time.perf_counter() - t0
    return {"cell_wall_s": wall, "cell_steps": steps, "overhead_s": max(wall - steps * s_per_step, 0.0),
            "status": res["status"]}


def estimate(reps: list[dict]) -> dict:
    """Hours of the whole sweep from the representative cells' measurements (method in the docstring)."""
    order = np.argsort([r["work"] for r in reps])
    w = np.array([reps[i]["work"] for i in order])
    step = np.array([reps[i]["s_per_step"] for i in order])
    over = np.array([reps[i]["overhead_s"] for i in order])
    draws = reps[0]["draws"]
    cells = sweep_cells()
    cw = np.array([work(n, m, d, draws) for d, _, n, m in cells])
    per_cell = np.interp(cw, w, over) + STEPS * np.interp(cw, w, step)
    hours = float(per_cell.sum() / 3600)
    return {"sweep_hours_one_process": hours, "cells_per_hour": len(cells) / hours,
            "median_cell_s": float(np.median(per_cell)), "max_cell_s": float(per_cell.max()),
            "share_of_time_in_steps": float(STEPS * np.interp(cw, w, step).sum() / per_cell.sum()),
            "target": "under 1 hour on one H200-class GPU", "meets_target": hours < 1.0}


def environment() -> dict:
    import jax

    dev = jax.devices()[0]
    return {"backend": jax.default_backend(), "device": str(dev), "device_kind": dev.device_kind,
            "device_count": jax.device_count(), "jax": jax.__version__, "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "precision": {"params_and_data": "float32", "x64_enabled": bool(jax.config.jax_enable_x64),
                          "matmul": str(jax.config.jax_default_matmul_precision or "backend default")},
            "xla_flags": os.environ.get("XLA_FLAGS", "")}


def main() -> int:
    import jax

    default_steps = 64 if jax.default_backend() == "cpu" else 2048
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "gmm_sweep.json")
    ap.add_argument("--steps", type=int, default=default_steps,
                    help=f"timed training steps per representative cell (default {default_steps} on this backend)")
    ap.add_argument("--overhead-steps", type=int, default=16,
                    help="steps of the whole-cell run that times the overhead")
    ap.add_argument("--seed-mode", default="vmap", choices=("vmap", "sequential", "auto"))
    ap.add_argument("--reuse", type=Path, default=None, metavar="OLD.json",
                    help="no timing: recompute the estimate from the measurements in an earlier result")
    args = ap.parse_args()
    if args.steps < 1 or args.overhead_steps < 1:
        ap.error("--steps and --overhead-steps must be >= 1")

    from memlab.config import DataConfig
    from memlab.io import read_json, to_json, write_json

    if args.reuse is not None:
        report = read_json(args.reuse)
        report["estimate"] = estimate(report["representative"])
        report["method"] = METHOD
        report.pop("fit", None)
        write_json(args.out, report)
        print(to_json(report))
        return 0
    report = {"benchmark": "gmm_sweep", "environment": environment(), "load_average_before": os.getloadavg(),
              "sweep": {"dims": DIMS, "components": COMPONENTS, "n_train": NS, "m_over_n": FRACTIONS,
                        "seeds": SEEDS, "steps": STEPS, "cells": len(sweep_cells())},
              "method": METHOD, "representative": []}
    for d, k, n, m in REPRESENTATIVE:
        data = DataConfig(dim=d, components=k, n_train=n)
        fields = train_fields(m, STEPS, args.seed_mode)
        rate = time_rate(data, fields, args.steps)
        over = time_overhead(data, fields, args.overhead_steps, rate["s_per_step"])
        rec = {"dim": d, "components": k, "n_train": n, "size": m, "work": work(n, m, d, rate["draws"]), **rate,
               **over, "cell_s_estimate": over["overhead_s"] + STEPS * rate["s_per_step"]}
        report["representative"].append(rec)
        print(f"d={d} K={k} N={n} M={m}: {rate['s_per_step'] * 1e3:.2f} ms/step ({rate['seed_mode']}), overhead "
              f"{over['overhead_s']:.1f} s, cell ~ {rec['cell_s_estimate'] / 60:.1f} min", file=sys.stderr)
    report["estimate"] = estimate(report["representative"])
    report["load_average_after"] = os.getloadavg()
    write_json(args.out, report)
    print(to_json(report))
    est = report["estimate"]
    print(f"sweep of {report['sweep']['cells']} cells: {est['sweep_hours_one_process']:.1f} h in one process "
          f"({est['cells_per_hour']:.1f} cells/h); wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
