"""Wall time of one crossover prediction (d=50, K=12, N=200, 26 noise levels, 100 draws, 50 values of M)
after compilation, and the same pmem losses computed the naive way (each subset evaluated from scratch with
the same noise draws, hence equal Monte Carlo accuracy), as a ratio. Writes benchmarks/results/crossover.json.

    .venv/bin/python benchmarks/crossover.py [--repeats 8] [--out benchmarks/results/crossover.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--naive-levels", type=int, default=26, help="noise levels timed for the naive way")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "crossover.json"))
    args = ap.parse_args()

    import jax

    from memlab.config import DataConfig, load_dataset
    from memlab.crossover.losses import m_grid, monte_carlo_losses, naive_pmem_losses
    from memlab.crossover.predict import CrossoverConfig, predict
    from memlab.diffusion.process import default_grid
    from memlab.io import write_json

    data = DataConfig(dim=50, components=12, n_train=200)
    cfg = CrossoverConfig(draws=100, repeats=args.repeats, grid=50)
    ds = load_dataset(data)
    predict(data, cfg, ds)  # compile
    t0 = time.perf_counter()
    result = predict(data, cfg, ds)
    t_predict = time.perf_counter() - t0

    t_T, m_G = default_grid(), m_grid(200, 50)
    t0 = time.perf_counter()
    table = monte_carlo_losses(ds, t_T, m_G, 100, args.repeats, 0)
    t_shared = time.perf_counter() - t0
    levels = np.linspace(0, 25, args.naive_levels).round().astype(int)
    naive_pmem_losses(ds, t_T[:1], m_G, 100, table.perms_PxN[:1], 0)  # compile every subset size
    t0 = time.perf_counter()
    naive = naive_pmem_losses(ds, t_T[levels], m_G, 100, table.perms_PxN, 0, t_ids=levels)
    t_naive = (time.perf_counter() - t0) * 26 / len(levels)
    diff = float(np.max(np.abs(naive - table.pmem_PxGxNxT[..., levels])))

    report = {
        "benchmark": "crossover",
        "setting": {"dim": 50, "components": 12, "n_train": 200, "noise_levels": 26, "draws": 100,
                    "m_values": 50, "repeats": args.repeats},
        "prediction_seconds": t_predict,
        "shared_losses_seconds": t_shared,
        "naive_losses_seconds": t_naive,
        "naive_levels_timed": len(levels),
        "speedup_vs_naive": t_naive / t_shared,
        "max_abs_difference_vs_naive": diff,
        "m_star_over_n": result["m_star_over_n"],
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "jax": jax.__version__,
                    "load_average_1min": os.getloadavg()[0]},
    }
    write_json(Path(args.out), report)
    print(f"prediction {t_predict:.2f} s; losses shared {t_shared:.2f} s vs naive {t_naive:.1f} s "
          f"({t_naive / t_shared:.1f}x), max |diff| {diff:.2e}; wrote {args.out}")


if __name__ == "__main__":
    main()
