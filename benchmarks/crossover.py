"""The crossover prediction at paper size (d=50, K=12, N=200; 26 noise levels, 100 draws, 8 permutations,
50 values of M): a FLOP model of the Monte Carlo losses, checked against XLA's own cost analysis of the
compiled program, the achieved GFLOP/s beside this run's dense matmul rate, the whole `memlab crossover
predict` process with a warm compile cache and what its start-up costs, and the naive per-subset losses
(each subset from scratch, same draws) at a few noise levels: speed-up and largest difference.
Writes benchmarks/results/crossover.json. Timings: wall seconds (min and median of --repeats) and CPU seconds
of this process; the machine's load averages are recorded before and after, since on a shared machine wall
time also measures the neighbours.

    .venv/bin/python benchmarks/crossover.py [--repeats 5] [--naive-levels 2] [--process-runs 3]
"""

from __future__ import annotations

import argparse
import inspect
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from machine import load_average, machine

OUT = Path(__file__).parent / "results" / "crossover.json"
PAPER = ["--data", "gmm", "--dim", "50", "--components", "12", "--n-train", "200"]


def flop_model(N: int, D: int, K: int, draws: int, P: int, G: int, L: int, chunk: int,
               mem_separate: bool = False) -> dict:
    """Floating-point operations of one noise level as memlab.crossover.losses computes it (padded queries
    included). Q = computed queries: P permutations x chunks x chunk size (each permutation's N x ceil(draws/P)
    (point, draw) pairs, padded to whole chunks). Matmuls count 2 per multiply-add. theta_mem's numerator is a
matmul of its own only when the size grid does not end at N (mem_separate); otherwise its loss is the last
prefix's."""
    from memlab.crossover.losses import query_layout

    R, C, n_chunks = query_layout(N, draws, P, chunk)
    Q = P * n_chunks * C
    m = {
        "queries": Q,
        "logits_matmul": 2 * Q * N * D,            # x_t . x_i for every stored point, once per query
        "mem_numerator_matmul": 2 * Q * N * D if mem_separate else 0,  # softmax weights @ points
        "prefix_numerator_matmul": 2 * Q * G * L * D,  # per segment: weights @ the segment's points
        "star_matmuls": 2 * 2 * Q * K * D,         # theta_star: logits and mixture means
        # per prefix and query: rescale-and-add of the running numerator, then |S/Z - x0|^2 (~5 per coordinate)
        "prefix_elementwise": 5 * Q * G * D,
        "exponentials": Q * (N * mem_separate + G * L + G),
    }
    m["matmul_total"] = sum(v for k, v in m.items() if k.endswith("matmul") or k.endswith("matmuls"))
    # The round figure: logits and prefix numerators of the 20,000 real queries, no padding.
    m["nominal_logits_plus_prefix"] = 2 * (2 * N * draws * N * D)
    return m


def xla_check(ds, m_G, draws: int, P: int) -> dict:
    """XLA's cost analysis of each piece of one permutation's work at one noise level (its ceil(draws/P) draws
    per point, N x that many queries in one block; the scan over prefixes unrolled so that XLA counts every
    step) beside the FLOP model of the same piece. XLA counts every elementwise operation, reductions and
    selects included; the model counts matmuls (2 per multiply-add) and ~5 operations per coordinate in the
    prefix loop."""
    import jax
    import jax.numpy as jnp

    from memlab.crossover.losses import _draws, _prefix_losses, _segments, permutations
    from memlab.diffusion.denoisers import empirical_logits, star_denoiser
    from memlab.diffusion.process import add_noise

    N, D = ds.train_NxD.shape
    K = ds.truth.means_KxD.shape[0]
    R = -(-draws // P)
    Q = N * R
    pos, valid = _segments(np.asarray(m_G))
    G, L = pos.shape
    idx, val = jnp.asarray(permutations(N, 1, 0)[0][pos]), jnp.asarray(valid)
    X = jnp.asarray(ds.train_NxD, jnp.float32)
    sq = jnp.sum(X**2, axis=1)
    star = star_denoiser(ds.truth)
    x0 = jnp.repeat(X, R, axis=0)
    eps = jnp.zeros_like(x0)
    t = jnp.float32(0.5)

    def cost(f, *a):
        c = jax.jit(f).lower(*a).compile().cost_analysis()
        c = c[0] if isinstance(c, list) else c
        return float(c.get("flops", float("nan"))), float(c.get("transcendentals", 0.0))

    lg = lambda x, e: empirical_logits(add_noise(x, e, t), t, X, sq)  # noqa: E731
    logits_f, _ = cost(lg, x0, eps)
    mem_f, mem_t = cost(lambda x, e: jnp.sum((jax.nn.softmax(lg(x, e), axis=1) @ X - x) ** 2, axis=1), x0, eps)
    star_f, star_t = cost(lambda x, e: jnp.sum((star(add_noise(x, e, t), t) - x) ** 2, axis=1), x0, eps)
    pre_f, pre_t = cost(lambda x, lgt: _prefix_losses(x, lgt, idx, val, X, True), x0, lg(x0, eps))
    draws_f, _ = cost(lambda k: _draws(k, jnp.arange(N), R, D, jnp.float32), jax.random.key(0))
    pieces = {
        "logits": {"xla_flops": logits_f, "model_matmul_flops": 2 * Q * N * D},
        "mem_numerator_if_grid_ends_below_N": {"xla_flops": mem_f - logits_f, "model_matmul_flops": 2 * Q * N * D,
                          "xla_transcendentals": mem_t},
        "star": {"xla_flops": star_f, "model_matmul_flops": 4 * Q * K * D, "xla_transcendentals": star_t},
        "prefix_losses": {"xla_flops": pre_f, "model_matmul_flops": 2 * Q * G * L * D,
                          "model_elementwise_flops": 5 * Q * G * D, "xla_transcendentals": pre_t},
        "noise_draws": {"xla_flops": draws_f, "model_matmul_flops": 0},
    }
    for v in pieces.values():
        modelled = v["model_matmul_flops"] + v.get("model_elementwise_flops", 0)
        v["xla_over_model"] = v["xla_flops"] / modelled if modelled else None  # the draws: integer work
    return {"program": f"one permutation at t = 0.5: {R} draws per point, {Q} queries in one block", "pieces": pieces}


def matmul_rate(n: int = 2048, repeats: int = 5) -> dict:
    """GFLOP/s of a dense float32 n x n matmul in this process: per wall second (best of `repeats`) and per
    CPU second of the process (median; less disturbed by other processes)."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(2), (n, n), jnp.float32)
    f = jax.jit(jnp.matmul)
    f(a, b).block_until_ready()
    t = _timed(lambda: f(a, b).block_until_ready(), repeats)
    return {"per_wall_s": 2 * n**3 / t["wall_min_s"] / 1e9, "per_cpu_s": 2 * n**3 / t["cpu_median_s"] / 1e9}


def _wall(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _timed(fn, repeats: int) -> dict:
    walls, cpus = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return {"wall_min_s": min(walls), "wall_median_s": statistics.median(walls), "cpu_median_s": statistics.median(cpus)}


def whole_process(runs: int) -> dict:
    """`memlab crossover predict` at paper size as a whole process, after one warm-up run that fills the
    compile cache; and the start-up pieces: Python + `import jax` + one operation, `memlab --help`."""
    exe = shutil.which("memlab", path=str(Path(sys.executable).parent)) or "memlab"
    cmd = [exe, "crossover", "predict", *PAPER, "--json"]
    def run(c) -> tuple[float, float]:  # (wall s, CPU s of the child)
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        w = _wall(lambda: subprocess.run(c, check=True, capture_output=True))
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        return w, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)

    def med(c) -> dict:
        w, cpu = zip(*[run(c) for _ in range(runs)])
        return {"wall_median_s": statistics.median(w), "wall_min_s": min(w), "cpu_median_s": statistics.median(cpu)}

    run(cmd)  # fills the compile cache
    return {"command": "memlab crossover predict " + " ".join(PAPER) + " --json", "runs": runs, **med(cmd),
            "python_import_jax_first_op": med([sys.executable, "-c",
                                               "import jax.numpy as j; j.zeros(1).block_until_ready()"]),
            "memlab_help": med([exe, "--help"])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats of the losses and the prediction")
    ap.add_argument("--naive-levels", type=int, default=2, help="noise levels timed for the naive way (0: skip)")
    ap.add_argument("--process-runs", type=int, default=3, help="whole-process runs timed (0: skip)")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    load_before = load_average()

    from memlab.config import DataConfig, load_dataset
    from memlab.crossover.losses import _segments, m_grid, monte_carlo_losses, naive_pmem_losses
    from memlab.crossover.predict import CrossoverConfig, predict
    from memlab.diffusion.compile_cache import enable_compilation_cache
    from memlab.diffusion.process import default_grid
    from memlab.io import write_json

    enable_compilation_cache()
    data = DataConfig(dim=50, components=12, n_train=200)
    cfg = CrossoverConfig()  # draws 100, repeats 8, grid 50: the command's defaults
    ds = load_dataset(data)
    t_T, m_G = default_grid(cfg.time_points), m_grid(200, cfg.grid)
    L = _segments(m_G)[0].shape[1]
    chunk = inspect.signature(monte_carlo_losses).parameters["chunk"].default  # what the command uses
    model = flop_model(200, 50, 12, cfg.draws, cfg.repeats, len(m_G), L, chunk)
    T = len(t_T)

    rate = matmul_rate()
    table = monte_carlo_losses(ds, t_T, m_G, cfg.draws, cfg.repeats, cfg.seed)  # compile (or cache load)
    losses = _timed(lambda: monte_carlo_losses(ds, t_T, m_G, cfg.draws, cfg.repeats, cfg.seed), args.repeats)
    predict(data, cfg, ds)
    prediction = _timed(lambda: predict(data, cfg, ds), max(1, args.repeats // 2))
    result = predict(data, cfg, ds)
    rate_after = matmul_rate()

    matmul_flops = T * model["matmul_total"]
    nominal = T * model["nominal_logits_plus_prefix"]
    best = losses["wall_min_s"]
    report = {
        "benchmark": "crossover",
        "setting": {"dim": 50, "components": 12, "n_train": 200, "noise_levels": T, "draws": cfg.draws,
                    "m_values": len(m_G), "repeats": cfg.repeats, "segment_length": L, "chunk": chunk},
        "flop_model_per_noise_level": model,
        "flop_model_total": {"matmul_flops": matmul_flops, "nominal_logits_plus_prefix_flops": nominal,
                             "elementwise_flops": T * model["prefix_elementwise"],
                             "exponentials": T * model["exponentials"]},
        "xla_cost_check": xla_check(ds, m_G, cfg.draws, cfg.repeats),
        "dense_matmul_gflops": {"before": rate, "after": rate_after},
        "losses": losses,
        "losses_matmul_gflops": {"per_wall_s": matmul_flops / best / 1e9,
                                 "per_cpu_s": matmul_flops / losses["cpu_median_s"] / 1e9},
        "losses_nominal_gflops_per_wall_s": nominal / best / 1e9,
        "share_of_matmul_rate": {
            "per_wall_s": matmul_flops / best / 1e9 / max(rate["per_wall_s"], rate_after["per_wall_s"]),
            "per_cpu_s": matmul_flops / losses["cpu_median_s"] / 1e9
            / max(rate["per_cpu_s"], rate_after["per_cpu_s"])},
        "prediction_in_process": prediction,
        "m_star": result["m_star"], "m_star_over_n": result["m_star_over_n"], "interval": result["interval"],
    }
    if args.naive_levels:
        levels = np.linspace(0, T - 1, args.naive_levels).round().astype(int)
        naive_pmem_losses(ds, t_T[:1], m_G, cfg.draws, table.perms_PxN[:1], cfg.seed)  # compile every size
        t0 = time.perf_counter()
        naive = naive_pmem_losses(ds, t_T[levels], m_G, cfg.draws, table.perms_PxN, cfg.seed, t_ids=levels)
        t_naive = (time.perf_counter() - t0) * T / len(levels)
        pm = table.pmem_PxGxNxT[..., levels]
        report["naive"] = {"levels_timed": levels.tolist(), "losses_seconds_scaled_to_all_levels": t_naive,
                           "speedup_vs_naive": t_naive / best,
                           "max_abs_difference": float(np.max(np.abs(naive - pm))),
                           "max_rel_difference": float(np.max(np.abs(naive - pm) / np.maximum(np.abs(naive), 1e-12)))}
    if args.process_runs:
        report["whole_process"] = whole_process(args.process_runs)
        report["whole_process"]["meets_3s_target"] = report["whole_process"]["wall_median_s"] <= 3.0
    report["meets_25pct_target"] = min(report["share_of_matmul_rate"].values()) >= 0.25
    report["machine"] = {**machine("jax"), "load_average_before": load_before}
    write_json(Path(args.out), report)
    share = report["share_of_matmul_rate"]
    print(f"losses {best:.2f} s (median {losses['wall_median_s']:.2f} s, CPU {losses['cpu_median_s']:.2f} s): "
          f"{100 * share['per_wall_s']:.0f}% (wall) / {100 * share['per_cpu_s']:.0f}% (CPU) of the dense matmul "
          f"rate ({rate['per_wall_s']:.0f} GFLOP/s, {rate['per_cpu_s']:.0f} per CPU-s); "
          f"load {report['machine']['load_average']}")
    if "whole_process" in report:
        print(f"whole process {report['whole_process']['wall_median_s']:.2f} s (median of {args.process_runs})")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
