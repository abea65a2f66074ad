"""Gather the 8x8 acceptance yardsticks (docs/iar_yardstick.md) of several runs and stages into two tables:
    python docs/results/yardstick_8x8/summarize.py OUTDIR RUN...
OUTDIR/conditions.csv: every UnitMem condition (k, factor) of every run and stage: T and C extracted, every cost,
and the verdict against the random cloud at matched cost for each cost measure;
OUTDIR/summary.csv: one row per run and stage (training state, UnitMem top-20% by 0 beside random 20% by 0, and
the verdict counts per cost measure)."""

import sys
from pathlib import Path

import pandas as pd

COSTS = ["cost_heldout_nll", "cost_sample_nll", "cost_fd", "cost_class_consistency"]
out, runs = Path(sys.argv[1]), [Path(r) for r in sys.argv[2:]]
conditions, summary = [], []
for run in runs:
    works = [run] + sorted((run / "checkpoints").glob("epoch-*"))
    for work in works:
        y = work / "yardstick"
        if not (y / "metrics.json").is_file():
            continue
        table, verdicts = pd.read_parquet(y / "yardstick.parquet"), pd.read_csv(y / "verdicts.csv")
        stage = table[["stage", "stage_epoch", "stage_train_acc", "stage_target_acc", "stage_heldout_nll",
                       "uniform_nll"]].iloc[0].to_dict()
        mine = table[table["method"] != "random"].copy()
        mine["condition"] = [f"k={k:g}%, factor {f:g}" for k, f in zip(mine["k"], mine["factor"])]
        wide = verdicts.pivot(index="condition", columns="cost_measure", values="verdict")
        wide.columns = [f"verdict_{c.removeprefix('cost_')}" for c in wide.columns]
        diff = verdicts.pivot(index="condition", columns="cost_measure", values="diff")
        diff.columns = [f"diff_{c.removeprefix('cost_')}" for c in diff.columns]
        mine = mine.merge(wide, left_on="condition", right_index=True).merge(diff, left_on="condition", right_index=True)
        keep = ["condition", "k", "factor", "n_edited", "T_n", "T_extracted", "T_extracted_recal", "C_n", "C_extracted",
                "T_token_match", "specificity", *COSTS, *wide.columns, *diff.columns]
        conditions.append(mine[keep].assign(run=run.name, **stage))
        cloud = table[(table["method"] == "random") & (table["factor"] == 0)]
        r20 = cloud[cloud["k"] == 20]
        top = mine[(mine["k"] == 20) & (mine["factor"] == 0)].iloc[0]
        counts = verdicts.groupby(["cost_measure", "verdict"]).size()
        summary.append({"run": run.name, **stage, "T_n": int(top["T_n"]), "C_n": int(top["C_n"]),
                        "unitmem20_T": top["T_extracted"], "unitmem20_C": top["C_extracted"],
                        "unitmem20_cost_sample_nll": top["cost_sample_nll"],
                        "random20_T_mean": r20["T_extracted"].mean(), "random20_T_sd": r20["T_extracted"].std(),
                        "random20_C_mean": r20["C_extracted"].mean(),
                        "random20_cost_sample_nll": r20["cost_sample_nll"].mean(),
                        **{f"verdicts_{c.removeprefix('cost_')}": "; ".join(f"{n} {v}" for v, n in counts[c].items())
                           for c in COSTS if c in counts.index.get_level_values(0)}})
out.mkdir(parents=True, exist_ok=True)
pd.concat(conditions).to_csv(out / "conditions.csv", index=False, float_format="%.4g")
pd.DataFrame(summary).to_csv(out / "summary.csv", index=False, float_format="%.4g")
print(pd.DataFrame(summary).to_string())
