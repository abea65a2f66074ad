"""How many of the random edits nearest in cost each better/worse verdict of the 8x8 leaderboard (under the rule
without the count correction, `verdict_uncorrected`, the stored verdicts before session 10) lies beyond (docs/iar_yardstick.md, "How calibrated the verdicts are"):

    .venv/bin/python docs/results/verdict_support.py

For every better or worse verdict in leaderboard_8x8/*_del_verdicts.csv: the edit's residual about the cloud's
isotonic fit (yardstick_8x8/B-RUN.csv, that stage's random rows, as the verdict used), and how many of the
K = neighbours(N) cloud points nearest in cost have a residual on the same side of it (ties counted as not
beyond). `beyond` = K - that number; `p_one_sided` = (1 + that number) / (K + 1), the conformal p-value of the
edit among its K neighbours; `verdict`: the file's verdict (with the continuity correction for counts). Writes verdict_support.csv; then, for every stored verdict file of docs/results, how many better / worse
verdicts there are with and without the correction (verdict_counts_corrected.csv); per localizer of the 8x8
leaderboard, its sample-NLL better / worse conditions (of 64) and run-stages with a better one under each rule
(leaderboard_8x8_corrected.csv); per remedy of the 8x8 mitigations, its sample-NLL verdict in each base run under
each rule (mitigations_8x8_corrected.csv). Prints them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from memlab.iar.verdict import fit_clouds

D = Path(__file__).resolve().parent
COSTS = ("cost_sample_nll", "cost_fd", "cost_class_consistency", "cost_heldout_nll")  # every one fitted


def main() -> None:
    rows = []
    for path in sorted((D / "leaderboard_8x8").glob("*_del_verdicts.csv")):
        stem = path.name.removesuffix("_del_verdicts.csv")
        run, stage = stem.rsplit("-", 1)
        table = pd.read_csv(D / "yardstick_8x8" / f"{run}.csv")
        cloud = table[(table["stage"] == stage) & (table["method"] == "random")].rename(columns={"T_extracted": "y"})
        v = pd.read_csv(path)
        for cost in COSTS:
            decided = v[(v["cost_measure"] == cost) & v["verdict_uncorrected"].isin(["better", "worse"])]
            if not len(decided):
                continue
            fit = fit_clouds(cloud, [cost], n_boot=1, y_max=float(cloud["T_n"].max()))[cost]
            for _, r in decided.iterrows():
                res_K = fit.local_residuals(r["cost"])
                own = r["y"] - float(fit.predict([r["cost"]])[0])
                better = r["verdict_uncorrected"] == "better"
                not_beyond = int(np.sum(res_K <= own) if better else np.sum(res_K >= own))
                rows.append({"run_stage": stem, "method": r["method"], "condition": r["condition"],
                             "cost_measure": cost, "verdict_uncorrected": r["verdict_uncorrected"],
                             "verdict": r["verdict"], "y": r["y"],
                             "cloud_y": r["cloud_y"], "K": res_K.size, "beyond": res_K.size - not_beyond,
                             "p_one_sided": (1 + not_beyond) / (res_K.size + 1)})
    out = pd.DataFrame(rows)
    out.to_csv(D / "verdict_support.csv", index=False, float_format="%.4g")
    counts = out.assign(beyond_all=out["beyond"] == out["K"]).groupby(["cost_measure", "verdict_uncorrected"]).agg(
        verdicts=("y", "size"), beyond_all_K=("beyond_all", "sum"), K=("K", "max"))
    print(counts.to_string())
    print(f"{len(out)} verdicts, {int((out['beyond'] == out['K']).sum())} beyond all K neighbours, "
          f"{int(out['verdict'].isin(['better', 'worse']).sum())} of them kept by the count correction")
    tally = []
    without = []
    for path in sorted(D.glob("**/*verdicts*.csv")):
        v = pd.read_csv(path)
        if "verdict_uncorrected" not in v:  # earlier-rule files that could not be recomputed
            without.append(str(path.relative_to(D)))
            continue
        for col in ("verdict_uncorrected", "verdict"):
            for w in ("better", "worse"):
                tally.append({"file": str(path.relative_to(D)), "rule": col, "verdict": w,
                              "n": int((v[col] == w).sum())})
    tally = pd.DataFrame(tally)
    tally["where"] = tally["file"].str.split("/").str[0]
    wide = tally.pivot_table(index="where", columns=["rule", "verdict"], values="n", aggfunc="sum")
    wide.to_csv(D / "verdict_counts_corrected.csv")
    print(wide.to_string())
    print("not tallied (no count-corrected verdict: earlier rule, no stored cloud):", ", ".join(without) or "none")
    print(leaderboard_by_method().to_string(index=False))
    print(mitigations_by_method().to_string(index=False))


RULES = {"verdict_uncorrected": "", "verdict": "corrected_"}
LETTER = {"better": "b", "worse": "w", "indistinguishable": "i", "outside the cloud": "o"}


def leaderboard_by_method() -> pd.DataFrame:
    v = pd.concat([pd.read_csv(p).assign(run_stage=p.name.removesuffix("_del_verdicts.csv"))
                   for p in sorted((D / "leaderboard_8x8").glob("*_del_verdicts.csv"))])
    v = v[v["cost_measure"] == "cost_sample_nll"]
    rows = []
    for method, g in v.groupby("method"):
        row = {"method": method, "conditions": len(g)}
        for col, tag in RULES.items():
            row[f"{tag}better"] = int((g[col] == "better").sum())
            row[f"{tag}worse"] = int((g[col] == "worse").sum())
            with_better = g.assign(b=g[col] == "better").groupby("run_stage")["b"].any()
            row[f"{tag}run_stages_with_better"] = int(with_better.sum())
        rows.append(row)
    out = pd.DataFrame(rows)
    out.to_csv(D / "leaderboard_8x8_corrected.csv", index=False)
    return out


def mitigations_by_method() -> pd.DataFrame:
    runs = ("next-scale-s0", "next-scale-s1", "raster-s0", "raster-s1")
    parts = []
    for run in runs:
        v = pd.read_csv(D / "mitigations_8x8" / "all" / f"{run}_verdicts.csv")
        v = v[v["cost_measure"] == "cost_sample_nll"]
        for col, tag in RULES.items():
            parts.append(pd.DataFrame({"method": v["method"] + " " + v["condition"].where(v["method"] == "unitmem", ""),
                                       "rule": tag or "uncorrected", "run": run, "v": v[col].map(LETTER).fillna("?")}))
    t = pd.concat(parts)
    t["method"] = t["method"].str.strip()
    out = t.pivot_table(index=["method", "rule"], columns="run", values="v", aggfunc="first").reset_index()
    out.to_csv(D / "mitigations_8x8_corrected.csv", index=False)
    return out


if __name__ == "__main__":
    main()
