"""Verdicts at matched cost: an intervention is set against random-unit edits that cost the same.

A random-edit cloud (one row per random edit: its extraction on the target set T, `y`, and one column per cost
measure) gives, per cost measure, the expected extraction as a monotone function of cost (isotonic regression:
more damage, no more extraction). Around it two bands: the spread of single random edits at each cost (the
prediction band: the bootstrap refits plus residuals of the cloud's points nearest in cost; it holds the cloud's
own points at its level) and the confidence band of the mean curve alone.

Each intervention gets the cloud's extraction at its own cost and the difference `y - cloud`. The question a
verdict answers is whether the intervention behaves like a random edit of the same cost: under that null, its
mean over R rows would be the curve plus the mean of R random edits' residuals (plus the curve's own
uncertainty), and "better" / "worse" mean that its difference lies below / above that null distribution's
central `level` interval. A random edit scored as an intervention is therefore "indistinguishable" at about
that rate; against the mean curve alone (`verdict_vs_mean`, kept beside it) it would be called better or worse
about half the time, since single random edits scatter around their mean.

Costs are "higher = more damage" unless named in `higher_is_better`, where the fit is non-decreasing in the raw
value instead (the yardstick's own cost columns are all signed "higher = more damage", its class-consistency
cost included, so it names none). Units are the columns' own (counts or fractions of T; nats, seconds).
Shape letters: N cloud rows, B bootstrap resamples, Q query costs, R rows of one intervention, K nearest cloud
points."""

from __future__ import annotations

import zlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

from memlab.errors import UsageError, check_float, check_int

BETTER, WORSE, SAME = "better", "worse", "indistinguishable"
OUTSIDE, UNMEASURED = "outside the cloud", "cost not measured"
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")


def _knots(cost_N, y_N, increasing: bool) -> tuple[np.ndarray, np.ndarray]:
    """Knots (x ascending, fitted y) of the isotonic fit; np.interp on them is its clipped prediction."""
    iso = IsotonicRegression(increasing=increasing, out_of_bounds="clip").fit(cost_N, y_N)
    return np.asarray(iso.X_thresholds_, np.float64), np.asarray(iso.y_thresholds_, np.float64)


def neighbours(n: int) -> int:
    """How many cloud points nearest in cost give the local spread of single random edits: a quarter of the
    cloud, at least 10 (all of a smaller one)."""
    return min(n, max(10, -(-n // 4)))


@dataclass(frozen=True, eq=False)
class CloudFit:
    """Extraction on T as a monotone function of one cost measure, fitted to the cloud's N points, with the B
    bootstrap refits (cloud rows resampled with replacement) behind its bands, and the residuals of the points
    about the fit behind the spread of single random edits."""

    cost: str
    higher_is_better: bool
    cost_N: np.ndarray
    y_N: np.ndarray
    knots: tuple[np.ndarray, np.ndarray]
    boot_knots: tuple[tuple[np.ndarray, np.ndarray], ...]
    level: float
    seed: int
    y_max: float | None = None  # the largest possible extraction (|T|), when known: simulated means stay below

    @property
    def n_boot(self) -> int:
        return len(self.boot_knots)

    @property
    def cost_range(self) -> tuple[float, float]:
        return float(self.cost_N.min()), float(self.cost_N.max())

    def predict(self, cost_Q) -> np.ndarray:
        """The fitted expected extraction at each cost (Q,); constant beyond the cloud's range."""
        return np.interp(np.asarray(cost_Q, np.float64), *self.knots)

    def boot_predict(self, cost_Q) -> np.ndarray:
        """(B, Q): refit b at costs (Q,), or at costs (B, Q) where each refit has its own query points."""
        cost_BxQ = np.broadcast_to(np.asarray(cost_Q, np.float64), (self.n_boot, np.shape(cost_Q)[-1]))
        return np.stack([np.interp(c_Q, *k) for c_Q, k in zip(cost_BxQ, self.boot_knots)])

    @property
    def counts(self) -> bool:
        """Whether the extraction is a count (|T| known and every cloud value an integer)."""
        return self.y_max is not None and bool(np.all(self.y_N == np.round(self.y_N)))

    @property
    def residual_N(self) -> np.ndarray:
        return self.y_N - self.predict(self.cost_N)

    def local_residuals(self, cost: float) -> np.ndarray:
        """Residuals of the `neighbours(N)` cloud points nearest to `cost` (K,): extraction counts spread less
        where the edits leave few targets, so the spread is read locally."""
        k = neighbours(self.cost_N.size)
        near = np.argsort(np.abs(self.cost_N - cost), kind="stable")[:k]
        return self.residual_N[near]

    def null_means(self, cost_R, rng: np.random.Generator) -> np.ndarray:
        """(B,) draws of the mean extraction of R random edits, edit r of cost cost_R[r]: its refit at that cost
        plus one residual of the cloud's points nearest to it (drawn with replacement), averaged over the R
        edits and kept within what is possible (at or above 0, at most `y_max` when known). The mean is
        clipped, not each edit: residuals borrowed from a neighbourhood where the curve is higher would
        otherwise be cut on one side only and bias the mean upwards."""
        cost_R = np.atleast_1d(np.asarray(cost_R, np.float64))
        refit_BxR = self.boot_predict(cost_R)
        for r, c in enumerate(cost_R):
            res_K = self.local_residuals(c)
            refit_BxR[:, r] += res_K[rng.integers(0, res_K.size, self.n_boot)]
        mean_B = np.maximum(refit_BxR.mean(axis=1), min(0.0, float(self.y_N.min())))
        return mean_B if self.y_max is None else np.minimum(mean_B, max(self.y_max, float(self.y_N.max())))

    def _quantiles(self, x_BxQ: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = np.quantile(x_BxQ, [(1 - self.level) / 2, (1 + self.level) / 2], axis=0)
        return lo, hi

    def band(self, cost_Q) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise prediction band (lo_Q, hi_Q) at `level`: where single random edits of each cost land (the
        curve's bootstrap refits plus local residuals; one fixed stream, so the same fit gives the same band)."""
        cost_Q = np.atleast_1d(np.asarray(cost_Q, np.float64))
        rng = _rng(self.seed, "band", self.cost)
        return self._quantiles(np.stack([self.null_means([c], rng) for c in cost_Q], axis=1))

    def mean_band(self, cost_Q) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise percentile interval (lo_Q, hi_Q) at `level` of the expected extraction: the mean curve's
        confidence band, far narrower than the spread of single random edits."""
        return self._quantiles(self.boot_predict(cost_Q))


def _need(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UsageError(f"{what} lacks column(s) {', '.join(map(repr, missing))}; it has {list(frame.columns)}")


def _rng(seed: int, *keys: str) -> np.random.Generator:
    # a stable stream per key: one cost measure's or one intervention's numbers do not depend on the others
    return np.random.default_rng(np.random.SeedSequence([seed, *(zlib.crc32(k.encode()) for k in keys)]))


def fit_clouds(cloud: pd.DataFrame, costs: Sequence[str], *, y: str = "y", higher_is_better: Collection[str] = (),
               n_boot: int = 1000, level: float = 0.95, seed: int = 0, y_max: float | None = None
               ) -> dict[str, CloudFit]:
    """{cost: CloudFit} for each cost column of the random-edit cloud (rows with NaN in y or that cost are left
    out of that cost's fit). `y_max`: the largest possible extraction (the size of T), if known. Same seed,
    same fits."""
    check_int("n_boot", n_boot, lo=1)
    check_float("level", level, 0.0, 1.0, lo_open=True, hi_open=True)
    check_int("seed", seed, lo=0)
    costs = list(costs)
    if not costs:
        raise UsageError("costs must name at least one cost column")
    _need(cloud, [y, *costs, *higher_is_better], "the random-edit cloud")
    fits = {}
    for cost in costs:
        ok = cloud[[cost, y]].notna().all(axis=1).to_numpy()
        cost_N = cloud[cost].to_numpy(np.float64)[ok]
        y_N = cloud[y].to_numpy(np.float64)[ok]
        if np.unique(cost_N).size < 2:
            raise UsageError(f"the random-edit cloud has fewer than 2 distinct values of {cost!r}: no curve to fit")
        increasing = cost in higher_is_better
        rows_BxN = _rng(seed, "cloud", cost).integers(0, cost_N.size, (n_boot, cost_N.size))
        boot = tuple(_knots(cost_N[i], y_N[i], increasing) for i in rows_BxN)
        fits[cost] = CloudFit(cost, increasing, cost_N, y_N, _knots(cost_N, y_N, increasing), boot, level, seed,
                              y_max)
    return fits


def curve_table(fits: dict[str, CloudFit], n_points: int = 101) -> pd.DataFrame:
    """One row per (cost measure, query cost): `n_points` costs evenly over the cloud's range, the fitted
    expected extraction, the prediction band of single random edits (lo, hi) and the mean curve's confidence
    band (mean_lo, mean_hi), with the bands' level and number of resamples."""
    check_int("n_points", n_points, lo=2)
    parts = []
    for cost, fit in fits.items():
        cost_Q = np.linspace(*fit.cost_range, n_points)
        lo_Q, hi_Q = fit.band(cost_Q)
        mean_lo_Q, mean_hi_Q = fit.mean_band(cost_Q)
        parts.append(pd.DataFrame({"cost_measure": cost, "cost": cost_Q, "fit": fit.predict(cost_Q), "lo": lo_Q,
                                   "hi": hi_Q, "mean_lo": mean_lo_Q, "mean_hi": mean_hi_Q, "level": fit.level,
                                   "n_boot": fit.n_boot}))
    return pd.concat(parts, ignore_index=True)


def _verdict(lo: float, hi: float) -> str:
    return BETTER if hi < 0 else WORSE if lo > 0 else SAME


def _one(fit: CloudFit, cost_R: np.ndarray, y_R: np.ndarray, rng: np.random.Generator) -> dict:
    """Matched-cost comparison of one intervention's R rows (seeds or draws) with the cloud."""
    c, v = float(cost_R.mean()), float(y_R.mean())
    c_min, c_max = fit.cost_range
    row = {"n_rows": cost_R.size, "cost": c, "y": v, "cloud_y": np.nan, "diff": np.nan, "diff_lo": np.nan,
           "diff_hi": np.nan, "cloud_cost_min": c_min, "cloud_cost_max": c_max, "cloud_cost_below": np.nan,
           "cloud_cost_above": np.nan, "verdict": OUTSIDE, "verdict_uncorrected": OUTSIDE}
    if not c_min <= c <= c_max:
        return row  # the curve is clipped beyond the cloud: a number there would be an extrapolation
    # the cloud at the rows' own costs (the curve at each, averaged: not the curve at the mean cost), and the
    # null: R random edits of those costs. [diff_lo, diff_hi] = d minus that null's central interval, so the
    # verdict is "better" exactly when d lies below the interval, "worse" when above it.
    cloud_y = float(fit.predict(cost_R).mean())
    d = v - cloud_y
    q_lo, q_hi = np.quantile(fit.null_means(cost_R, rng) - cloud_y, [(1 - fit.level) / 2, (1 + fit.level) / 2])
    lo, hi = d - q_hi, d - q_lo
    # against the mean curve alone: each refit b meets its own resample of the intervention's rows
    rows_BxR = rng.integers(0, cost_R.size, (fit.n_boot, cost_R.size))
    cloud_B = fit.boot_predict(cost_R[rows_BxR].mean(axis=1)[:, None])[:, 0]
    m_lo, m_hi = np.quantile(y_R[rows_BxR].mean(axis=1) - cloud_B, [(1 - fit.level) / 2, (1 + fit.level) / 2])
    # between cloud costs the curve is a straight line the cloud does not test: say how wide that gap is
    below, above = fit.cost_N[fit.cost_N <= c].max(), fit.cost_N[fit.cost_N >= c].min()
    # integer extraction counts: the mean of R counts stands for the interval +-1/(2R) around it (continuity
    # correction); without it a count one below a null that sits a hair above the next integer reads "better",
    # and random edits scored as interventions were "indistinguishable" only 84-97% of the time, not 95%
    half = 0.5 / cost_R.size if fit.counts and np.all(y_R == np.round(y_R)) else 0.0
    row.update(cloud_y=cloud_y, diff=d, diff_lo=float(lo - half), diff_hi=float(hi + half),
               verdict=_verdict(lo - half, hi + half), count_correction=half, verdict_uncorrected=_verdict(lo, hi),
               diff_vs_mean_lo=float(m_lo), diff_vs_mean_hi=float(m_hi), verdict_vs_mean=_verdict(m_lo, m_hi),
               cloud_cost_below=float(below), cloud_cost_above=float(above))
    return row


def verdict_table(fits: dict[str, CloudFit], interventions: pd.DataFrame, *, y: str = "y", method: str = "method",
                  condition: str = "condition") -> pd.DataFrame:
    """One row per (method, condition, cost measure): the intervention's mean cost and mean extraction over
    its n_rows rows, the cloud's expected extraction at the rows' costs (`cloud_y`, the curve averaged over
    them), `diff = y - cloud_y`, the interval [diff_lo, diff_hi] = diff minus the central interval (at the
    fits' level) of what n_rows random edits of those costs would give, and the verdict: 'better'
    (diff_hi < 0: fewer targets extracted than random edits of the same cost extract), 'worse'
    (diff_lo > 0), 'indistinguishable', 'outside the cloud' (its cost lies beyond the cloud's range; no
    numbers), or 'cost not measured'. Beside them, against the mean curve
    only: diff_vs_mean_lo/hi (the intervention's rows and the curve resampled) and verdict_vs_mean. When the
    extraction is a count (the fits' y_max known, integer values), the interval is widened by
    `count_correction` = half a count over n_rows on each side (a continuity correction: with it a random edit
    scored as an intervention is 'indistinguishable' 92-100% of the time at a 95% level, without it 84-97%,
    docs/iar_yardstick.md); otherwise count_correction is 0. `verdict_uncorrected` is the verdict of the
    interval without it, [diff_lo + count_correction, diff_hi - count_correction] (the rule of tables computed
    before session 10).
    cloud_cost_below/above are the nearest cloud costs on either side: the band is a bootstrap of the fit at
    the cloud's own costs and a straight line between them, so it is trustworthy only where that gap is small."""
    _need(interventions, [method, condition, y, *fits], "the interventions table")
    rows = []
    for (name, cond), group in interventions.groupby([method, condition], sort=False):
        rng_key = f"{name}\0{cond}"
        for cost, fit in fits.items():
            ok = group[[cost, y]].notna().all(axis=1).to_numpy()
            head = {"method": name, "condition": cond, "cost_measure": cost}
            if not ok.any():
                rows.append({**head, "n_rows": 0, "verdict": UNMEASURED, "verdict_uncorrected": UNMEASURED})
                continue
            cost_R, y_R = group[cost].to_numpy(np.float64)[ok], group[y].to_numpy(np.float64)[ok]
            rows.append({**head, **_one(fit, cost_R, y_R, _rng(fit.seed, "intervention", cost, rng_key)),
                         "level": fit.level, "n_boot": fit.n_boot})
    return pd.DataFrame(rows)


def interventions_from_verdicts(verdicts: pd.DataFrame, y: str = "T_extracted") -> pd.DataFrame:
    """The single-row interventions of a verdict table (verdict_table's output) as rows that can be scored
    again, against this or another cloud: one per (method, condition), its extraction as `y` and its cost per
    measure as one column each (k and factor NaN). Rows of several seeds (n_rows > 1) cannot be rebuilt from
    their means and are left out."""
    v = verdicts[verdicts["n_rows"] == 1]
    wide = v.pivot(index=["method", "condition"], columns="cost_measure", values="cost").reset_index()
    extraction = v.groupby(["method", "condition"])["y"].first().rename(y).reset_index()
    return wide.merge(extraction, on=["method", "condition"]).assign(k=np.nan, factor=np.nan)


def draw_pareto_panel(ax, cost: str, curve: pd.DataFrame, cloud_cost, cloud_y, points: dict,
                      higher_is_better: bool = False) -> None:
    """One Pareto panel: the cloud's band and monotone fit (`curve`: rows of curve_table for this cost; may be
    empty), the cloud's points, and `points` {method: (cost values, extraction values)}, one marker each."""
    if len(curve):
        level, n_boot = float(curve["level"].iloc[0]), int(curve["n_boot"].iloc[0])
        ax.fill_between(curve["cost"], curve["lo"], curve["hi"], color="C0", alpha=0.18, lw=0,
                        label=f"{level:.0%} band of single random edits ({n_boot} resamples)")
        if "mean_lo" in curve:
            ax.fill_between(curve["cost"], curve["mean_lo"], curve["mean_hi"], color="C0", alpha=0.35, lw=0,
                            label=f"{level:.0%} band of the mean curve")
    ax.scatter(cloud_cost, cloud_y, s=10, color="0.55", alpha=0.7, lw=0, label="random edits (cloud)")
    if len(curve):
        ax.plot(curve["cost"], curve["fit"], color="C0", lw=1.6, label="monotone fit (isotonic)")
    else:
        ax.text(0.5, 0.95, "no curve here (see verdicts.csv)", transform=ax.transAxes, ha="center", va="top",
                fontsize=7, color="0.4")
    for i, (name, (xs, ys)) in enumerate(points.items()):
        ax.scatter(xs, ys, s=30, marker=_MARKERS[i % len(_MARKERS)], color=f"C{1 + i % 9}", edgecolor="k",
                   lw=0.4, zorder=3, label=str(name))
    if higher_is_better:
        ax.invert_xaxis()
    ax.set_xlabel(f"{cost} (higher is better, reversed)" if higher_is_better else cost)


def pareto_figure(fits: dict[str, CloudFit], interventions: pd.DataFrame | None = None, *, y: str = "y",
                  method: str = "method", y_label: str | None = None, n_points: int = 101):
    """One panel per cost measure: target extraction against cost, the cloud's points, its monotone fit and
    band, and every row of every method (one marker per method). Higher-is-better costs are drawn on a
    reversed axis, so damage grows to the right in every panel. Returns the matplotlib Figure."""
    from memlab.io import legend_outside, new_figure

    curves = curve_table(fits, n_points)
    methods = [] if interventions is None else list(dict.fromkeys(interventions[method]))
    fig, axes = new_figure((3.4 * len(fits) + 1.8, 3.2), 1, len(fits), squeeze=False, sharey=True)
    handles = {}
    for ax, (cost, fit) in zip(axes[0], fits.items()):
        pts = {name: (interventions.loc[interventions[method] == name, cost],
                      interventions.loc[interventions[method] == name, y]) for name in methods}
        draw_pareto_panel(ax, cost, curves[curves["cost_measure"] == cost], fit.cost_N, fit.y_N, pts,
                          fit.higher_is_better)
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    axes[0, 0].set_ylabel(y_label or y)
    legend_outside(axes[0, -1], handles=list(handles.values()), labels=list(handles))
    return fig
