"""Sweep throughput: cells per hour of one small fixed sweep with the local backend (process pool) and with
Ray (a local Ray instance) on this machine, as a ratio; and training throughput with several seeds trained
together under jax.vmap against one seed at a time (model-steps per second), on whatever device JAX sees.

    python benchmarks/sweep.py [--out benchmarks/results/sweep.json] [--workers N] [--skip-ray]

Writes one JSON object (also printed on stdout)."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from memlab.io import to_json, write_json

SPEC = {
    "name": "bench",
    "data": {"dataset": "gmm", "dim": 10, "components": 2, "n_train": 40},
    "model": {"kind": "mixture", "unit": "fraction", "sizes": [0.25, 0.5, 0.75, 1.0]},
    "seeds": {"count": 1},
    "train": {"steps": 200, "lr": 1e-2, "n_checkpoints": 3},
    "sampling": {"samples": 64},
    "predict": {"repeats": 2, "draws": 8},
}


def time_backend(backend: str, workers: int) -> dict:
    from memlab.sweep.runner import run_sweep
    from memlab.sweep.spec import parse_spec

    out = Path(tempfile.mkdtemp(prefix=f"sweep-bench-{backend}-"))
    try:
        start = time.perf_counter()
        table = run_sweep(parse_spec(SPEC), out, backend=backend, workers=workers, progress=False)
        wall = time.perf_counter() - start
    finally:
        shutil.rmtree(out, ignore_errors=True)
    cells = int(table["cell_id"].nunique())
    return {"backend": backend, "workers": workers, "cells": cells, "failed": int((table["status"] == "failed").sum()),
            "wall_s": wall, "cells_per_hour": cells / wall * 3600}


def time_seed_modes(seeds: int, steps: int) -> dict:
    """Mixture estimator at d=50, K=12, N=200, M=160 (the train benchmark's shape), `seeds` seeds."""
    import jax

    from memlab.config import DataConfig
    from memlab.sweep.cells import resolve_train, train_cell

    data = DataConfig(dim=50, components=12, n_train=200)
    out = {"device": str(jax.devices()[0]), "seeds": seeds, "steps": steps}
    for mode in ("vmap", "sequential"):
        fields = dict(model="mixture", size=160, steps=steps, seeds=seeds, seed_mode=mode, samples=32,
                      n_checkpoints=3, eval_test=100, lr=1e-2)
        train_cell(data, resolve_train(dict(fields, steps=2)), None, False)  # compile outside the timing
        res = train_cell(data, resolve_train(fields), None, False)
        secs = res["timing"]["seconds"]  # training loop incl. the three checkpoint evaluations
        out[mode] = {"train_s": secs, "model_steps_per_s": seeds * steps / secs}
    out["vmap_over_sequential"] = out["vmap"]["model_steps_per_s"] / out["sequential"]["model_steps_per_s"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sweep.json")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    result = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "load_average_before": [round(v, 2) for v in os.getloadavg()]}, "spec": SPEC}
    result["local"] = time_backend("local", args.workers)
    try:
        import ray  # noqa: F401
        have_ray = True
    except ImportError:
        have_ray = False
    if have_ray and not args.skip_ray:
        try:
            result["ray"] = time_backend("ray", args.workers)
            result["ray_over_local"] = result["ray"]["cells_per_hour"] / result["local"]["cells_per_hour"]
        except Exception as e:  # noqa: BLE001 - e.g. the raylet's 15 s agent timeout on an overloaded machine
            result["ray"] = f"failed: {type(e).__name__}: {str(e).splitlines()[0]}"
    else:
        result["ray"] = "skipped (Ray not installed: pip install -e '.[ray]')" if not have_ray else "skipped"
    result["seed_modes"] = time_seed_modes(args.seeds, args.steps)
    result["machine"]["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    write_json(args.out, result)
    print(to_json(result))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
