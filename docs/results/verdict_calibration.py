"""How often a random-like intervention gets "indistinguishable", by where its cost falls in the cloud: the
calibration of memlab.iar.verdict on synthetic clouds shaped like the stored 8x8 next-scale final-stage ones
(raster and memorized-stage clouds are cheaper; docs/iar_yardstick.md).

    .venv/bin/python docs/results/verdict_calibration.py [--clouds 300] [--out docs/results/verdict_calibration.csv]

Setting: each cloud has 70 random edits (as yardstick_8x8's), costs drawn from an exponential with mean 0.9
(most edits cheap, a few costly, like the next-scale final-stage sample-NLL costs there), and |T| = 8 targets of
which an edit of cost c leaves y ~ Binomial(8, f(c)) extracted, f(c) = 0.98 / (1 + exp(4 (c - 1.2))) (flat near 8, then a steep fall).
The "intervention" is one more random edit, at the cloud's cost quantile q, scored as a single row
(`n_rows` 1) and, at the same cost, as two rows (two seeds). The verdicts use the stored runs' settings
(1000 bootstrap refits, level 0.95, y_max = 8). Nominal: 95% indistinguishable, 2.5% on each side (with
integer counts the null is discrete, so the sides are not exact).

Writes one row per (rows, quantile): the true expected extraction there and the share of clouds with each
verdict, for `verdict_uncorrected` (no columns' prefix) and for `verdict` (with the continuity correction for counts,
`corrected_*`; the shipped verdict since session 10)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from memlab.iar.verdict import BETTER, SAME, WORSE, fit_clouds, verdict_table

QUANTILES = (0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98)
N_EDITS, T_SIZE, COST = 70, 8, "cost_sample_nll"


def kept(cost):
    """True share of the targets a random edit of this cost leaves extracted."""
    return 0.98 / (1.0 + np.exp(4.0 * (np.asarray(cost) - 1.2)))


def one_cloud(r: int, n_boot: int) -> pd.DataFrame:
    rng = np.random.default_rng([r, 0xCA1])
    cost = rng.exponential(0.9, N_EDITS)
    cloud = pd.DataFrame({COST: cost, "y": rng.binomial(T_SIZE, kept(cost)).astype(float)})
    fits = fit_clouds(cloud, [COST], n_boot=n_boot, seed=r, y_max=T_SIZE)
    at = np.quantile(cost, QUANTILES)
    rows = []
    for q, c in zip(QUANTILES, at):
        y = rng.binomial(T_SIZE, kept(c), 2).astype(float)
        rows += [{"method": f"1 row, q={q}", "condition": "a", COST: c, "y": y[0]},
                 {"method": f"2 rows, q={q}", "condition": "a", COST: c, "y": y[0]},
                 {"method": f"2 rows, q={q}", "condition": "a", COST: c, "y": y[1]}]
    v = verdict_table(fits, pd.DataFrame(rows))
    return v.assign(cloud=r)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clouds", type=int, default=300)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--out", default=str(Path(__file__).parent / "verdict_calibration.csv"))
    args = ap.parse_args()
    v = pd.concat([one_cloud(r, args.n_boot) for r in range(args.clouds)], ignore_index=True)
    v[["rows", "q"]] = v["method"].str.extract(r"(\d) rows?, q=([\d.]+)")
    out = []
    for (rows, q), g in v.groupby(["rows", "q"]):
        mean_cost = float(np.quantile(np.random.default_rng(0).exponential(0.9, 200_000), float(q)))
        row = {"rows": int(rows), "cost_quantile": float(q), "true_extracted": T_SIZE * float(kept(mean_cost)),
               "clouds": len(g)}
        for col, tag in (("verdict_uncorrected", ""), ("verdict", "corrected_")):
            row.update({f"{tag}indistinguishable": float(np.mean(g[col] == SAME)),
                        f"{tag}better": float(np.mean(g[col] == BETTER)), f"{tag}worse": float(np.mean(g[col] == WORSE))})
        out.append(row)
    table = pd.DataFrame(out).sort_values(["rows", "cost_quantile"])
    table.to_csv(args.out, index=False, float_format="%.4g")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
