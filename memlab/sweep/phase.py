"""Phase analysis of a sweep table: per data configuration, the observed transition (the M/N where the mean
memorization ratio first reaches 0.5, linearly interpolated), its bootstrap interval over seeds and samples
(or the grid step that holds it, when the curve jumps across that step from below 0.1 to at least 0.9),
the bracket [last M/N with ratio < 0.1, first M/N with ratio >= 0.9], and beside it the predicted M*/N of
the crossover for the same data and training set."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

LEVEL, LOW, HIGH = 0.5, 0.1, 0.9
BAD_STATUS = ("failed", "diverged")
DATA_COLUMNS = ["dataset", "dim", "components", "n_train", "variance", "data_seed", "model"]


def crossing(x_S: np.ndarray, y_S: np.ndarray, level: float = LEVEL) -> float:
    """The x where y first reaches `level`, linearly interpolated; -inf when y[0] already does (the
    transition lies below the grid), +inf when y never does (above the grid). x ascending."""
    above = np.nonzero(y_S >= level)[0]
    if not len(above):
        return math.inf
    i = int(above[0])
    if i == 0:
        return -math.inf
    x0, x1, y0, y1 = x_S[i - 1], x_S[i], y_S[i - 1], y_S[i]
    return float(x0 + (level - y0) * (x1 - x0) / (y1 - y0))


def bracket(x_S: np.ndarray, y_S: np.ndarray) -> tuple[float | None, float | None]:
    """[last x with y < 0.1 before the first x with y >= 0.9, that first x]; None where absent."""
    high = np.nonzero(y_S >= HIGH)[0]
    hi = int(high[0]) if len(high) else len(y_S)
    low = np.nonzero(y_S[:hi] < LOW)[0]
    return (float(x_S[low[-1]]) if len(low) else None, float(x_S[hi]) if hi < len(y_S) else None)


def bootstrap_crossing(x_S, ratios: list[np.ndarray], samples: list[np.ndarray], n_boot: int = 2000,
                       seed: int = 0, level: float = LEVEL) -> np.ndarray:
    """Crossings of `n_boot` resampled mean curves. Each replicate resamples, per size, the seeds with
    replacement and then the samples of each chosen seed (a Binomial(n, ratio) redraw is exactly a resample
    of its n memorized/not flags). Returns n_boot values, +-inf where the replicate does not cross."""
    rng = np.random.default_rng(seed)
    curves_BxS = np.empty((n_boot, len(x_S)))
    for j, (r_R, n_R) in enumerate(zip(ratios, samples)):
        idx_BxR = rng.integers(0, len(r_R), size=(n_boot, len(r_R)))
        p_BxR, n_BxR = r_R[idx_BxR], n_R[idx_BxR]
        redraw = np.where(n_BxR > 0, rng.binomial(np.maximum(n_BxR, 1), p_BxR) / np.maximum(n_BxR, 1), p_BxR)
        curves_BxS[:, j] = redraw.mean(axis=1)
    return np.array([crossing(x_S, c, level) for c in curves_BxS])


def _previous_ratio(rows: pd.DataFrame) -> float | None:
    """Mean over seeds of the ratio at the second-to-last training checkpoint: beside the final ratio it
    shows whether training ran long enough for the curve to stop moving."""
    if "checkpoints_json" not in rows:
        return None
    vals = []
    for text in rows["checkpoints_json"]:
        ck = [c for c in json.loads(text) if c.get("memorization_ratio") is not None]
        if len(ck) >= 2:
            vals.append(ck[-2]["memorization_ratio"])
    return float(np.mean(vals)) if len(vals) == len(rows) else None


def _finite_or_none(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def observed_transition(group: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Observed transition of one data configuration from its rows (failed/diverged rows left out)."""
    good = group[~group["status"].isin(BAD_STATUS)]
    by_size = good.groupby("size", sort=True)
    x_S = by_size["m_over_n"].mean().to_numpy(float)
    order = np.argsort(x_S, kind="stable")
    ratios = [g["memorization_ratio"].to_numpy(float) for _, g in by_size]
    samples = [g["n_samples"].to_numpy(int) for _, g in by_size]
    x_S, ratios, samples = x_S[order], [ratios[i] for i in order], [samples[i] for i in order]
    mean_S = np.array([r.mean() for r in ratios])
    sizes = [{"size": int(s), "m_over_n": float(x), "mean_ratio": float(m), "min_ratio": float(r.min()),
              "max_ratio": float(r.max()), "seeds": int(len(r))}
             for s, x, m, r in zip(np.array(list(by_size.groups))[order], x_S, mean_S, ratios)]
    prev = [_previous_ratio(g) for _, g in by_size]
    for rec, i in zip(sizes, order):
        rec["mean_ratio_previous_checkpoint"] = prev[i]
    moved = [abs(r["mean_ratio"] - r["mean_ratio_previous_checkpoint"]) for r in sizes
             if r["mean_ratio_previous_checkpoint"] is not None]
    out: dict[str, Any] = {"sizes": sizes, "n_rows": int(len(group)), "n_bad_rows": int(len(group) - len(good)),
                           "max_change_last_checkpoint": max(moved) if moved else None}
    if len(x_S) < 2:
        out.update(m_over_n=None, interval=[None, None], interval_open=[True, True], bracket=[None, None],
                   where="too few sizes")
        return out
    point = crossing(x_S, mean_S)
    boot = np.sort(bootstrap_crossing(x_S, ratios, samples, n_boot=n_boot, seed=seed))
    lo, hi = boot[int(math.floor(0.025 * (n_boot - 1)))], boot[int(math.ceil(0.975 * (n_boot - 1)))]
    where = "below the grid" if point == -math.inf else "above the grid" if point == math.inf else "inside the grid"
    # An interval that leaves the grid is open on that side; one wholly above (below) it starts at the
    # largest (ends at the smallest) size: the transition is known only to lie beyond it.
    lo_v = float(x_S[-1]) if lo == math.inf else _finite_or_none(lo)
    hi_v = float(x_S[0]) if hi == -math.inf else _finite_or_none(hi)
    boot_iv, open_, interval_from = [lo_v, hi_v], [lo == -math.inf, hi == math.inf], "bootstrap"
    step = grid_step(x_S, mean_S) if where == "inside the grid" else None
    if step is not None:  # the union of the bootstrap interval and the step (a side the bootstrap left open stays open)
        lo_v = None if open_[0] else min(lo_v, step[0])
        hi_v = None if open_[1] else max(hi_v, step[1])
        interval_from = "grid step"
    out.update(m_over_n=_finite_or_none(point), interval=[lo_v, hi_v],
               interval_open=open_, bracket=list(bracket(x_S, mean_S)), where=where,
               boot_not_crossing=float(np.mean(~np.isfinite(boot))), interval_from=interval_from,
               bootstrap_interval=boot_iv)
    return out


def grid_step(x_S: np.ndarray, mean_S: np.ndarray) -> tuple[float, float] | None:
    """The grid step [x_{i-1}, x_i] around the crossing when the curve jumps across it from below LOW to at
    least HIGH, else None. Then no size lies on the rise: the interpolated 0.5 point is only the straight line
    between two ratios far from 0.5, and the bootstrap (seed and sample noise of those two ratios) cannot see
    that, so its interval would look precise. The transition is known only to lie in this step: the reported
    interval is the union of the step and the bootstrap's interval (`interval_from` = "grid step"; the
    bootstrap's alone stays in `bootstrap_interval`)."""
    above = np.nonzero(mean_S >= LEVEL)[0]
    if not len(above) or above[0] == 0:
        return None
    i = int(above[0])
    if mean_S[i - 1] < LOW and mean_S[i] >= HIGH:
        return float(x_S[i - 1]), float(x_S[i])
    return None


def _within(v: float | None, lo: float | None, hi: float | None, open_: list[bool]) -> bool | None:
    if v is None:
        return None
    lo_ok = open_[0] or (lo is not None and v >= lo)
    hi_ok = open_[1] or (hi is not None and v <= hi)
    return bool(lo_ok and hi_ok)


def summarize(table: pd.DataFrame, predictions: dict[str, dict | None], n_boot: int = 2000,
              seed: int = 0) -> list[dict[str, Any]]:
    """One record per data configuration: its parameters, the observed transition and the prediction."""
    if not len(table):
        return []
    records = []
    for key, group in table.groupby("data_key", sort=False):
        first = group.iloc[0]
        rec = {"data_key": key, **{c: _plain(first[c]) for c in DATA_COLUMNS}}
        obs = observed_transition(group, n_boot=n_boot, seed=seed)
        pred = predictions.get(key) or {}
        # the crossover reports NaN where the losses never cross: None here, like every missing number
        p = _finite_or_none(pred.get("m_star_over_n"))
        p_int = [_finite_or_none(v) for v in (pred.get("interval") or [None, None])]
        rec["observed"] = obs
        w = pred.get("weighting")
        rec["predicted"] = {"m_over_n": p, "interval": p_int, "error": pred.get("error"),
                            "weighting": w if isinstance(w, str) or w is None else "custom"}
        rec["prediction_in_interval"] = _within(p, *obs.get("interval", [None, None]), obs.get("interval_open", [True, True])) \
            if obs.get("m_over_n") is not None or any(obs.get("interval_open", [])) else None
        o_lo, o_hi = obs.get("interval", [None, None])
        if p is None or None in p_int or (o_lo is None and o_hi is None):
            rec["intervals_overlap"] = None
        else:
            rec["intervals_overlap"] = bool((o_lo is None or p_int[1] >= o_lo) and (o_hi is None or p_int[0] <= o_hi))
        records.append(rec)
    return sorted(records, key=lambda r: (r["dataset"], r["dim"] or 0, r["components"], r["variance"], r["data_seed"], r["n_train"]))


def _plain(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return None if np.isnan(v) else float(v)
    return v


def losses_at(table: pd.DataFrame, t: float) -> pd.DataFrame:
    """Per (data configuration, size): M/N and the mean over seeds of the trained model's train and test loss
    (x0 units) at the grid time nearest to `t`."""
    recs = []
    for _, row in table[~table["status"].isin(BAD_STATUS)].iterrows():
        per_t = json.loads(row["per_t_json"])
        if not per_t:
            continue
        e = min(per_t, key=lambda d: abs(d["t"] - t))
        recs.append({"data_key": row["data_key"], "size": row["size"], "m_over_n": row["m_over_n"], "t": e["t"],
                     "train_loss": e["train_loss"], "test_loss": e["test_loss"]})
    if not recs:
        return pd.DataFrame(columns=["data_key", "size", "m_over_n", "t", "train_loss", "test_loss"])
    return pd.DataFrame(recs).groupby(["data_key", "size"], as_index=False).mean(numeric_only=True)


def reference_losses_at(pred: dict, t: float, n_train: int) -> dict[str, Any] | None:
    """The three reference models' training losses (x0 units) at the grid time of `pred` nearest to `t`:
    theta_mem and theta_star as numbers, theta_pmem(M) as arrays over M/N (None if the curve lacks per-t)."""
    per_t = pred.get("per_t") or []
    if not per_t:
        return None
    i = int(np.argmin([abs(e["t"] - t) for e in per_t]))
    curve = [c for c in pred.get("curve") or [] if "loss_pmem_per_t" in c]
    m_over_n = np.array([c["m"] for c in curve], float) / n_train if curve else None
    pmem = np.array([c["loss_pmem_per_t"][i] for c in curve], float) if curve else None
    return {"t": per_t[i]["t"], "loss_mem": per_t[i]["loss_mem"], "loss_star": per_t[i]["loss_star"],
            "pmem_m_over_n": m_over_n, "loss_pmem": pmem}


def summarize_dir(root, n_boot: int = 2000, seed: int = 0, weighting: str | None = None,
                  predict_fn=None) -> tuple[pd.DataFrame, dict, list[dict[str, Any]]]:
    """(table, predictions by data key, summary) of a sweep directory. `weighting` sets the prediction of
    another loss weighting beside the observation (computed once, then cached in the directory)."""
    from memlab.sweep.store import SweepStore

    store = SweepStore(root)
    spec = store.read_spec()
    table = store.table()
    keys = table["data_key"].unique() if len(table) else []
    if weighting is None:
        predictions = {k: store.read_prediction(k) for k in keys}
    else:
        predictions = {k: _prediction_for(store, spec, table, k, weighting, predict_fn) for k in keys}
    return table, predictions, summarize(table, predictions, n_boot=n_boot, seed=seed)


def _prediction_for(store, spec: dict, table: pd.DataFrame, key: str, weighting: str, predict_fn) -> dict:
    from memlab.config import DataConfig
    from memlab.sweep import cells

    name = f"{key}.{weighting}"
    cached = store.read_prediction(name)
    if cached is not None:
        return cached
    config = json.loads(table.loc[table["data_key"] == key, "config_json"].iloc[0])
    data_cfg = DataConfig(**config["data"])
    fields = cells.resolve_predict(dict(spec.get("predict") or {}, weighting=weighting), config["train"], data_cfg)
    pred = (predict_fn or cells.predict_data)(data_cfg, fields)
    store.write_prediction(name, pred)
    return pred
