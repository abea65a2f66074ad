"""The localizer leaderboard (`memlab iar localizers RUN`): one row per localizer, from

- DEL: every method's top-k% edits on the yardstick, all against one random cloud at matched cost
  (memlab.iar.compare with several unit tables): targets left at k = 10% by 0, the verdict counts per cost
  measure, the mean matched-cost difference on sample NLL, the mean specificity;
- INJ (optional): recall@k of the injected units (memlab.iar.inject_recall), overall, per injected fraction,
  with the t-interval over seeds, beside random's expected recall k/N;
- per-image mode (optional): how much the units a method ranks first for one target overlap with those it ranks
  first for another (mean Jaccard of the top-k% sets over pairs of targets: 1 = nothing specific to one image);
- the localizer's compute seconds, and whether it uses labels an attacker or defender would not have.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from memlab.iar.unitmem import top_count

HEADLINE = "cost_sample_nll"


def del_rows(table: pd.DataFrame, verdicts: pd.DataFrame) -> dict[str, dict]:
    """Per method, the DEL columns from the yardstick table and its verdicts (compare.run_comparison)."""
    out = {}
    for name in dict.fromkeys(table.loc[table["method"] != "random", "method"]):
        mine, v = table[table["method"] == name], verdicts[verdicts["method"] == name]
        k10 = mine[(mine["k"] == 10) & (mine["factor"] == 0)]
        row = {"del_T_k10_factor0": float(k10["T_extracted"].iloc[0]) if len(k10) else np.nan,
               "del_T_n": int(mine["T_n"].iloc[0]), "del_specificity_mean": float(mine["specificity"].mean())}
        for cost, g in v.groupby("cost_measure"):
            counts = g["verdict"].value_counts()
            short = cost.removeprefix("cost_")
            for verdict in ("better", "indistinguishable", "worse"):
                row[f"del_{short}_{verdict}"] = int(counts.get(verdict, 0))
            if cost == HEADLINE:
                row["del_sample_nll_mean_diff"] = float(g["diff"].mean())
        out[name] = row
    return out


def inj_rows(summary: pd.DataFrame) -> dict[str, dict]:
    """Per method, overall recall@k (block -1) for each injected fraction, with its interval and chance."""
    out: dict[str, dict] = {}
    for r in summary[summary["block"] == -1].itertuples():
        f = f"{r.fraction:g}"
        out.setdefault(r.method, {}).update({f"inj_recall_f{f}": r.recall, f"inj_recall_f{f}_lo": r.recall_lo,
                                             f"inj_recall_f{f}_hi": r.recall_hi, f"inj_chance_f{f}": r.chance})
    return out


def per_image_overlap(table: pd.DataFrame, pct: float = 1.0) -> float:
    """Mean Jaccard overlap, over pairs of targets, of the units a per-image table ranks in its top pct% for each
    target (a table with a `target` column and one row per target and unit); NaN with fewer than 2 targets."""
    tops = []
    for _, g in table.groupby("target", sort=False):
        n = top_count(len(g), pct)
        tops.append(set(map(tuple, g.nlargest(n, "score")[["layer", "unit"]].to_numpy().tolist())))
    pairs = [len(a & b) / len(a | b) for a, b in combinations(tops, 2) if a | b]
    return float(np.mean(pairs)) if pairs else float("nan")


def leaderboard(methods: list[str], seconds: dict[str, float], uses_labels: dict[str, bool],
                dele: dict[str, dict], inj: dict[str, dict] | None = None,
                overlap: dict[str, float] | None = None) -> pd.DataFrame:
    rows = []
    for name in methods:
        row = {"method": name, "uses_labels": uses_labels[name], "seconds": seconds.get(name, np.nan),
               **dele.get(name, {})}
        if inj is not None:
            row.update(inj.get(name, {}))
        if overlap is not None:
            row["per_image_top1pct_overlap"] = overlap.get(name, np.nan)
        rows.append(row)
    return pd.DataFrame(rows)
