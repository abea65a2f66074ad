"""The predicted critical size M*: where the weighted training loss of theta_pmem(M) falls below that of
theta_star (x0 units), with a bootstrap interval, the per-noise-level crossover, and the closed-form
approximations beside the Monte Carlo answer."""

from __future__ import annotations

import numpy as np

from memlab.config import DataConfig, load_dataset, to_dict
from memlab.crossover import approximations as approx
from memlab.crossover.config import CrossoverConfig  # noqa: F401  (re-exported API)
from memlab.crossover.losses import LossTable, m_grid, monte_carlo_losses
from memlab.crossover.weighting import weights


def crossing(m_G: np.ndarray, diff_G: np.ndarray) -> float:
    """First M where diff = loss_pmem(M) - loss_star turns negative, linearly interpolated between grid
    points; the smallest M if it is negative throughout, NaN if it never turns negative."""
    neg = np.flatnonzero(diff_G < 0)
    if len(neg) == 0 or not np.all(np.isfinite(diff_G)):
        return float("nan")
    g = int(neg[0])
    if g == 0:
        return float(m_G[0])
    d0, d1 = diff_G[g - 1], diff_G[g]
    return float(m_G[g - 1] + (m_G[g] - m_G[g - 1]) * d0 / (d0 - d1))


def _bootstrap(table: LossTable, w_T: np.ndarray, n_boot: int, seed: int):
    """Replicates of the weighted pmem curve (B x G) and of M* (B): resample the permutations with replacement.
    Each carries its own subset and its own noise draws, and is compared with theta_star on those same draws
    (common random numbers: the draws' noise largely cancels in the difference, as it does in the estimate),
    so the interval is the Monte Carlo and subset noise of the estimate for this training set. Training points
    are not resampled: a point's loss depends on whether its permutation's subset holds it, and resampling
    points lets the share of points inside each subset drift away from M/N, noise the estimator does not
    have (it made the interval several times wider than the spread over fresh seeds). With P permutations the
    percentile interval is about sqrt((P - 1) / P) of the true spread (0.89 at P = 5, 0.94 at P = 8); with one
    there is nothing to resample and predict() reports no interval."""
    P = table.pmem_PxGxNxT.shape[0]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xB0]))
    wp_PxG = (table.pmem_PxGxNxT @ w_T).mean(axis=2)
    ws_P = (table.star_per_permutation_PxNxT @ w_T).mean(axis=1)
    perm_w_BxP = np.stack([np.bincount(rng.integers(0, P, P), minlength=P) for _ in range(n_boot)]) * table.draws_P
    perm_w_BxP = perm_w_BxP / perm_w_BxP.sum(axis=1, keepdims=True)
    curves = perm_w_BxP @ wp_PxG
    m_star = np.array([crossing(table.m_G, c - s) for c, s in zip(curves, perm_w_BxP @ ws_P)])
    return curves, m_star


def _percentiles(values: np.ndarray, level: float = 0.95):
    finite = values[np.isfinite(values)]
    if len(finite) < 0.5 * len(values):  # most replicates never cross: no honest interval
        return [float("nan"), float("nan")]
    lo, hi = np.percentile(finite, [50 * (1 - level), 50 * (1 + level)])
    return [float(lo), float(hi)]


def _approximations(dataset, table: LossTable, w_T: np.ndarray, m_star_mc: float) -> dict:
    N = table.pmem_PxGxNxT.shape[2]
    m_G = table.m_G
    gen_T = approx.generalizing_excess(dataset.truth, table.psi_T)
    trace = approx.within_trace(dataset.truth)
    gen_w = float(gen_T @ w_T)
    mem_T = table.mem_NxT.mean(0)
    gen_mc_T = table.star_NxT.mean(0) - mem_T
    pmem_mc_GxT = table.pmem_GxNxT.mean(1) - mem_T[None]
    nn_G = approx.nearest_neighbour_excess(dataset.train_NxD, table.perms_PxN, m_G).mean(0)
    frac_G = 1 - m_G / N
    forms = {
        "linear": (trace * frac_G, 1 - gen_w / trace),
        "linear-2x": (2 * trace * frac_G, 1 - gen_w / (2 * trace)),
        "nearest-neighbour": (nn_G, crossing(m_G, nn_G - gen_w) / N),
    }
    inner = m_G < N  # the excess is 0 at M = N for every form; relative errors there are meaningless
    mc_w_G = pmem_mc_GxT[inner] @ w_T
    out = {}
    for name, (excess_G, ratio) in forms.items():
        ratio = float(np.clip(ratio, 0, 1)) if np.isfinite(ratio) else float("nan")
        out[name] = {
            "m_star_over_n": ratio,
            "m_star": ratio * N,
            "delta_vs_mc": ratio - m_star_mc / N if np.isfinite(m_star_mc) else float("nan"),
            "pmem_excess_rel_error": float(np.mean(np.abs(excess_G[inner] - mc_w_G) / np.abs(mc_w_G))),
            "gen_excess_rel_error": float(np.abs(gen_w - gen_mc_T @ w_T) / abs(gen_mc_T @ w_T)),
            "pmem_excess": [float(v) for v in excess_G],
        }
    out["_generalizing_closed_form_per_t"] = [float(v) for v in gen_T]
    return out


def predict(data_cfg: DataConfig, cfg: CrossoverConfig | None = None, dataset=None, progress=None) -> dict:
    """Run the whole prediction. Returns a JSON-ready dict (losses in x0 units, summed over coordinates).
    cfg.x64 computes the Monte Carlo losses in float64 inside a scope: the process's precision is left as it
    was (and without it they are float32 even in a process that runs in float64)."""
    cfg = cfg or CrossoverConfig()
    cfg.check_against(data_cfg)
    dataset = dataset if dataset is not None else load_dataset(data_cfg)
    import jax.numpy as jnp

    from memlab.diffusion.precision import x64
    from memlab.diffusion.process import default_grid

    dtype = jnp.float64 if cfg.x64 else jnp.float32
    N = dataset.n_train
    t_T = default_grid(cfg.time_points)
    m_G = m_grid(N, cfg.grid, cfg.grid_spacing)
    with x64(cfg.x64):  # the only JAX work; the table it returns is numpy
        table = monte_carlo_losses(dataset, t_T, m_G, cfg.draws, cfg.repeats, cfg.seed, dtype, progress=progress)
    w_T = weights(cfg.weighting, t_T)

    pmem_GxT = table.pmem_GxNxT.mean(1)
    star_T, mem_T = table.star_NxT.mean(0), table.mem_NxT.mean(0)
    m_star = crossing(m_G, pmem_GxT @ w_T - star_T @ w_T)
    curves, m_star_boot = _bootstrap(table, w_T, cfg.bootstrap, cfg.seed)
    lo_hi = np.percentile(curves, [2.5, 97.5], axis=0)
    # each permutation against theta_star on its own draws, as in the bootstrap
    star_PxT = table.star_per_permutation_PxNxT.mean(1)
    per_perm = [crossing(m_G, table.pmem_PxGxNxT[p].mean(1) @ w_T - star_PxT[p] @ w_T) / N
                for p in range(cfg.repeats)]
    return {
        "config": {"data": to_dict(data_cfg), "crossover": to_dict(cfg)},
        "weighting": cfg.weighting if isinstance(cfg.weighting, str) else list(cfg.weighting),
        "weights": [float(v) for v in w_T],
        "n_train": N,
        "dim": dataset.dim,
        "m_star": m_star,
        "m_star_over_n": m_star / N,
        # one permutation has nothing to resample: no interval (the bootstrap would give a zero-width one)
        "interval": _percentiles(m_star_boot / N) if cfg.repeats > 1 else [float("nan"), float("nan")],
        "interval_level": 0.95,
        "m_star_over_n_per_permutation": per_perm,
        "loss_star_weighted": float(star_T @ w_T),
        "loss_mem_weighted": float(mem_T @ w_T),
        "per_t": [
            {"t": float(t), "psi": float(p), "loss_mem": float(lm), "loss_star": float(ls),
             "m_star_over_n": crossing(m_G, pmem_GxT[:, i] - ls) / N}
            for i, (t, p, lm, ls) in enumerate(zip(t_T, table.psi_T, mem_T, star_T))
        ],
        "curve": [
            {"m": int(m), "m_over_n": float(m / N), "loss_pmem": float(pmem_GxT[g] @ w_T),
             "loss_pmem_lo": float(lo_hi[0, g]), "loss_pmem_hi": float(lo_hi[1, g]),
             "loss_pmem_per_t": [float(v) for v in pmem_GxT[g]]}
            for g, m in enumerate(m_G)
        ],
        "approximations": _approximations(dataset, table, w_T, m_star),
    }
