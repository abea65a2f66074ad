"""The training-time axis of a sweep: per cell (one training configuration, all its seeds), the
generalization time and the memorization time read off the log-spaced checkpoints that every run records
(`checkpoints_json` of the sweep rows: step, memorization_ratio, train_loss, test_loss in x0 units), and
per series (everything fixed but N) a log-log fit of the memorization time against N.

- generalization time: the first checkpoint step whose mean (over seeds) test loss lies within a relative
  tolerance `gen_rtol` of the curve's minimum (gen_rtol = 0 gives the step of the minimum itself). `t_gen`
  reads the loss averaged over noise levels, which for an eps-predicting network is dominated by the
  largest t (an eps error is amplified by sigma^2 / alpha^2 there); `t_gen_per_t` applies the same rule to
  each noise level's test loss, and `t_gen_median_t` is the median over levels (a level still falling at
  the last checkpoint is right-censored and counts as later than every step);
- memorization time: the step where the mean ratio over seeds first reaches LEVEL = 0.5, interpolated
  linearly in log(step) between the two checkpoints around the crossing (linearly in step when the earlier
  one is step 0). Its interval is the bracketing pair of checkpoints; a cell with several seeds also gets
  a 95% bootstrap interval over seeds (resample seeds, average, cross again);
- censoring: a cell whose mean ratio never reaches 0.5 is right-censored (t_mem > its last checkpoint),
  one that already has it at the first checkpoint is left-censored (t_mem <= that step). Censored cells
  are reported, never silently dropped; the fit uses the cells that crossed.

Pure numpy / pandas / scipy; returns data, prints nothing. Shape letters: C checkpoints, R seeds (runs),
B bootstrap replicates, P fit points."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from memlab.sweep.phase import BAD_STATUS

LEVEL = 0.5
GEN_RTOL = 0.01
# what stays fixed along one series of the fit: N (n_train) is the only axis that varies
SERIES_COLUMNS = ["dataset", "dim", "components", "variance", "data_seed", "model", "size"]
CROSSED, NEVER, BEFORE = "crossed", "right-censored", "left-censored"


def generalization_step(steps_C: np.ndarray, test_loss_C: np.ndarray, rtol: float = GEN_RTOL) -> int | None:
    """The first step whose test loss is within `rtol` (relative) of the minimum; None without finite losses."""
    loss_C = np.asarray(test_loss_C, float)
    ok = np.isfinite(loss_C)
    if not ok.any():
        return None
    best = float(loss_C[ok].min())
    within = np.nonzero(ok & (loss_C <= best + rtol * abs(best)))[0]
    return int(np.asarray(steps_C)[within[0]])


def crossing_step(steps_C: np.ndarray, ratio_C: np.ndarray, level: float = LEVEL) -> dict[str, Any]:
    """Where a ratio curve over checkpoints first reaches `level`. steps ascending; NaN ratios (diverged or
    unevaluated checkpoints) are skipped. Returns {"step": interpolated step or None, "bracket": [the last
    checkpoint below, the first at or above] (None on an open side), "status": crossed / right-censored /
    left-censored}."""
    steps_C, ratio_C = np.asarray(steps_C, float), np.asarray(ratio_C, float)
    keep = np.isfinite(ratio_C)
    steps_C, ratio_C = steps_C[keep], ratio_C[keep]
    if not len(steps_C):
        raise ValueError("no checkpoint with a memorization ratio")
    above = np.nonzero(ratio_C >= level)[0]
    if not len(above):
        return {"step": None, "bracket": [float(steps_C[-1]), None], "status": NEVER}
    i = int(above[0])
    if i == 0:
        return {"step": None, "bracket": [None, float(steps_C[0])], "status": BEFORE}
    s0, s1, r0, r1 = steps_C[i - 1], steps_C[i], ratio_C[i - 1], ratio_C[i]
    f = (level - r0) / (r1 - r0)
    step = s0 + f * (s1 - s0) if s0 <= 0 else math.exp(math.log(s0) + f * (math.log(s1) - math.log(s0)))
    return {"step": float(step), "bracket": [float(s0), float(s1)], "status": CROSSED}


def per_level_generalization(steps_C: np.ndarray, loss_CxT: np.ndarray, t_T: list | None,
                             rtol: float = GEN_RTOL) -> tuple[list[dict[str, Any]], float | None]:
    """(per noise level {"t", "t_gen", "censored"}, median t_gen over levels). A level whose first step
    within `rtol` of its minimum is the last checkpoint was still falling: censored (t_gen >= that step),
    +inf in the median, which is None when it is infinite or no level has a finite loss."""
    steps_C = np.asarray(steps_C, float)
    levels, vals = [], []
    for k in range(loss_CxT.shape[1]):
        g = generalization_step(steps_C, loss_CxT[:, k], rtol)
        if g is None:
            continue
        censored = bool(g == steps_C[-1] and len(steps_C) > 1)
        levels.append({"t": None if t_T is None else t_T[k], "t_gen": g, "censored": censored})
        vals.append(math.inf if censored else float(g))
    if not vals:
        return levels, None
    med = float(np.median(vals))
    return levels, med if math.isfinite(med) else None


def _level_times(rows: pd.DataFrame, n_levels: int) -> list | None:
    """The noise levels t of the per-t losses (from the first row's per_t_json); None if unrecorded."""
    try:
        per_t = json.loads(rows.iloc[0].get("per_t_json") or "[]")
        t_T = [float(e["t"]) for e in per_t]
    except (TypeError, ValueError, KeyError):
        return None
    return t_T if len(t_T) == n_levels else None


def _curves(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(steps_C, ratio_RxC, test_loss_RxC) on the checkpoint steps that every seed recorded; None when the
    rows have no checkpoint with a ratio."""
    per_seed = []
    for text in rows["checkpoints_json"]:
        ck = [c for c in json.loads(text or "[]") if isinstance(c, dict) and isinstance(c.get("step"), (int, float))]
        per_seed.append({int(c["step"]): c for c in ck})
    if not per_seed:
        return None
    common = sorted(set.intersection(*(set(d) for d in per_seed)))
    num = lambda v: float("nan") if v is None else float(v)  # noqa: E731
    ratio_RxC = np.array([[num(d[s].get("memorization_ratio")) for s in common] for d in per_seed]).reshape(len(per_seed), -1)
    loss_RxC = np.array([[num(d[s].get("test_loss")) for s in common] for d in per_seed]).reshape(len(per_seed), -1)
    if not np.isfinite(ratio_RxC).any():
        return None
    return np.array(common, float), ratio_RxC, loss_RxC


def _level_losses(rows: pd.DataFrame, steps_C: np.ndarray) -> np.ndarray | None:
    """Per-noise-level test losses R x C x T at `steps_C` (`test_loss_t` of the checkpoints); None when a
    seed lacks them or their lengths differ."""
    out = []
    for text in rows["checkpoints_json"]:
        by_step = {int(c["step"]): c.get("test_loss_t") for c in json.loads(text or "[]")
                   if isinstance(c, dict) and isinstance(c.get("step"), (int, float))}
        curves = [by_step.get(int(s)) for s in steps_C]
        if any(not isinstance(c, list) for c in curves):
            return None
        out.append([[float("nan") if v is None else float(v) for v in c] for c in curves])
    if len({len(c) for seed in out for c in seed}) != 1:
        return None
    return np.array(out, float)


def _nanmean(x_RxC: np.ndarray) -> np.ndarray:
    ok = np.isfinite(x_RxC)
    return np.where(ok.any(0), np.where(ok, x_RxC, 0.0).sum(0) / np.maximum(ok.sum(0), 1), np.nan)


def seed_bootstrap(steps_C, ratio_RxC: np.ndarray, n_boot: int = 1000, seed: int = 0,
                   level: float = LEVEL) -> dict[str, Any]:
    """95% percentile interval of the crossing step over seed resamples of the mean curve. A replicate that
    never crosses counts as +inf, one that starts above as -inf: a side that reaches them is None (open)."""
    rng = np.random.default_rng(seed)
    idx_BxR = rng.integers(0, len(ratio_RxC), size=(n_boot, len(ratio_RxC)))
    vals_B = np.empty(n_boot)
    for b, idx in enumerate(idx_BxR):
        c = crossing_step(steps_C, _nanmean(ratio_RxC[idx]), level)
        vals_B[b] = c["step"] if c["status"] == CROSSED else (math.inf if c["status"] == NEVER else -math.inf)
    vals_B.sort()
    lo, hi = vals_B[int(math.floor(0.025 * (n_boot - 1)))], vals_B[int(math.ceil(0.975 * (n_boot - 1)))]
    fin = lambda v: float(v) if math.isfinite(v) else None  # noqa: E731
    return {"interval": [fin(lo), fin(hi)], "censored_fraction": float(np.mean(~np.isfinite(vals_B)))}


def cell_timescales(rows: pd.DataFrame, gen_rtol: float = GEN_RTOL, n_boot: int = 1000,
                    seed: int = 0) -> dict[str, Any] | None:
    """The record of one cell (its rows: one per seed, failed/diverged rows left out by the caller); None
    when no seed recorded a checkpoint with a ratio."""
    cur = _curves(rows)
    if cur is None:
        return None
    steps_C, ratio_RxC, loss_RxC = cur
    mean_C = _nanmean(ratio_RxC)
    first = rows.iloc[0]
    rec: dict[str, Any] = {"cell_id": str(first["cell_id"]), "data_key": str(first["data_key"]),
                           "n_train": int(first["n_train"]), **{c: _plain(first[c]) for c in SERIES_COLUMNS},
                           "m_over_n": _plain(first.get("m_over_n")), "seeds": int(len(rows)),
                           "steps": steps_C.tolist(), "mean_ratio": [_plain(v) for v in mean_C]}
    rec["t_gen"] = generalization_step(steps_C, _nanmean(loss_RxC), gen_rtol)
    loss_RxCxT = _level_losses(rows, steps_C)
    t_T = _level_times(rows, loss_RxCxT.shape[2]) if loss_RxCxT is not None else None
    rec["t_gen_per_t"], rec["t_gen_median_t"] = (per_level_generalization(steps_C, _nanmean(loss_RxCxT), t_T, gen_rtol)
                                                 if loss_RxCxT is not None else ([], None))
    cross = crossing_step(steps_C, mean_C)
    rec.update(t_mem=cross["step"], t_mem_bracket=cross["bracket"], status=cross["status"])
    rec["t_mem_per_seed"] = [crossing_step(steps_C, r)["step"] if np.isfinite(r).any() else None for r in ratio_RxC]
    rec["t_mem_seed_interval"] = seed_bootstrap(steps_C, ratio_RxC, n_boot, seed) if len(ratio_RxC) >= 2 else None
    return rec


def timescales(table: pd.DataFrame, gen_rtol: float = GEN_RTOL, n_boot: int = 1000, seed: int = 0,
               fixed: str = "size") -> tuple[list[dict[str, Any]], list[str]]:
    """(records of the cells with ratio checkpoints, ids of the finished cells without any), sorted by
    series then N. `fixed`: what a series holds fixed beside the data parameters, "size" (absolute sizes:
    a network's width, M) or "m_over_n" (sizes given as fractions of N)."""
    if fixed not in ("size", "m_over_n"):
        raise ValueError(f"fixed must be 'size' or 'm_over_n', got {fixed!r}")
    if not len(table) or "checkpoints_json" not in table:
        return [], sorted(table["cell_id"].unique().tolist()) if "cell_id" in table else []
    good = table[~table["status"].isin(BAD_STATUS)]
    recs, missing = [], []
    for cell_id, rows in good.groupby("cell_id", sort=True):
        rec = cell_timescales(rows, gen_rtol, n_boot, seed)
        if rec is None:
            missing.append(str(cell_id))
            continue
        rec["series"] = series_key(rec, fixed)
        recs.append(rec)
    recs.sort(key=lambda r: (r["series"], r["n_train"]))
    return recs, missing


def series_key(rec: dict, fixed: str = "size") -> str:
    """'gmm d=10 K=2 var=1 seed=0 mlp size=64' (or '... M/N=0.5'): what is fixed along one series."""
    model = f"size={_g(rec['size'])}" if fixed == "size" else f"M/N={rec['m_over_n']:.3g}"
    return (f"{rec['dataset']} d={_g(rec['dim'])} K={rec['components']} var={_g(rec['variance'])} "
            f"seed={rec['data_seed']} {rec['model']} {model}")


def fit_power_law(n_P, t_P, conf: float = 0.95) -> dict[str, Any]:
    """Least squares of log t = log c + a log N. Returns exponent a with its `conf` interval (Student t on
    the slope's standard error; None with fewer than 3 points), prefactor c, r^2 and the number of points."""
    from scipy import stats

    n_P, t_P = np.asarray(n_P, float), np.asarray(t_P, float)
    out: dict[str, Any] = {"n_points": int(len(n_P)), "exponent": None, "interval": None, "prefactor": None,
                           "r2": None, "confidence": conf}
    if len(n_P) < 2 or len(np.unique(n_P)) < 2:
        return out
    fit = stats.linregress(np.log(n_P), np.log(t_P))
    out.update(exponent=float(fit.slope), prefactor=float(math.exp(fit.intercept)), r2=float(fit.rvalue ** 2))
    if len(n_P) >= 3:
        half = float(stats.t.ppf(0.5 + conf / 2, len(n_P) - 2) * fit.stderr)
        out["interval"] = [float(fit.slope - half), float(fit.slope + half)]
    return out


def fit_series(records: list[dict[str, Any]], conf: float = 0.95) -> list[dict[str, Any]]:
    """One fit per series (records of `timescales`) over its crossed cells, the censored cells named beside it."""
    out = []
    for key in dict.fromkeys(r["series"] for r in records):
        cells = [r for r in records if r["series"] == key]
        crossed = [r for r in cells if r["status"] == CROSSED]
        fit = fit_power_law([r["n_train"] for r in crossed], [r["t_mem"] for r in crossed], conf)
        # a median of 0 (most levels at their minimum from the first checkpoint on) has no logarithm: left out
        gen = [r for r in cells if (r.get("t_gen_median_t") or 0) > 0]
        gen_fit = fit_power_law([r["n_train"] for r in gen], [r["t_gen_median_t"] for r in gen], conf)
        out.append({"series": key, "n_values": sorted({r["n_train"] for r in cells}), **fit,
                    "t_gen_median_t_fit": gen_fit,
                    "censored": [{"cell_id": r["cell_id"], "n_train": r["n_train"], "status": r["status"],
                                  "bracket": r["t_mem_bracket"]} for r in cells if r["status"] != CROSSED]})
    return out


def _g(v) -> str:
    return "-" if v is None else f"{v:g}" if isinstance(v, (int, float)) else str(v)


def _plain(v):
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if np.isnan(v) else float(v)
    return v
