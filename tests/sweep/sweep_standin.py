"""Stand-ins for training and prediction, injected into the runner by the sweep tests so that the runner,
store and analysis are tested in milliseconds. They are deterministic functions of the config (a logistic
memorization curve centred at M/N = CENTRE, binomial sample noise), never used by the product."""

from __future__ import annotations

import os
import time

import numpy as np

CENTRE = 0.45
T_GRID = [0.9, 0.5, 0.1]


def resolve_train(fields: dict) -> dict:
    return {"steps": 10, "samples": 64, "weighting": "eps", "seeds": 1, **fields}


def resolve_predict(fields: dict, train: dict, data_cfg) -> dict:
    return {"weighting": train.get("weighting"), **fields}


def true_ratio(m_over_n: float) -> float:
    return float(1.0 / (1.0 + np.exp(-(m_over_n - CENTRE) * 25.0)))


def fake_cell(data_cfg, train: dict, out_dir, resume) -> dict:
    delay = float(os.environ.get("MEMLAB_STANDIN_SLEEP", "0"))
    if delay:
        time.sleep(delay)
    if train["size"] in {int(s) for s in os.environ.get("MEMLAB_STANDIN_FAIL", "").split(",") if s}:
        raise RuntimeError(f"stand-in failure at size {train['size']}")
    m_over_n = train["size"] / data_cfg.n_train
    per_seed = []
    for seed in range(data_cfg.seed, data_cfg.seed + train["seeds"]):  # as TrainConfig.seed_list
        rng = np.random.default_rng([data_cfg.seed, train["size"], seed])
        n = train["samples"]
        ratio = rng.binomial(n, true_ratio(m_over_n)) / n
        per_t = [{"t": t, "psi": (1 - t * t) / t / t, "train_loss": 30 * t * (1 - m_over_n / 2),
                  "test_loss": 30 * t * (1 + m_over_n)} for t in T_GRID]
        per_seed.append({"seed": seed, "memorization_ratio": ratio, "interval": [max(0, ratio - 0.1), min(1, ratio + 0.1)],
                         "per_t": per_t, "checkpoints": [], "status": "ok", "param_count": train["size"] * data_cfg.dim + 1})
    agg = dict(per_seed[0], memorization_ratio=float(np.mean([s["memorization_ratio"] for s in per_seed])))
    return {**agg, "per_seed": per_seed}


def fake_predict(data_cfg, fields: dict) -> dict:
    per_t = [{"t": t, "psi": (1 - t * t) / t / t, "loss_mem": 0.0, "loss_star": 30 * t, "m_star_over_n": CENTRE}
             for t in T_GRID]
    curve = [{"m": m, "loss_pmem": 1.0, "loss_pmem_lo": 1.0, "loss_pmem_hi": 1.0,
              "loss_pmem_per_t": [30 * t * (1 - m / data_cfg.n_train) for t in T_GRID]}
             for m in range(1, data_cfg.n_train + 1, max(1, data_cfg.n_train // 10))]
    return {"m_star": CENTRE * data_cfg.n_train, "m_star_over_n": CENTRE, "interval": [CENTRE - 0.03, CENTRE + 0.03],
            "per_t": per_t, "curve": curve, "config": fields}


STANDINS = dict(cell_fn=fake_cell, resolve_train=resolve_train, predict_fn=fake_predict, resolve_predict=resolve_predict)
