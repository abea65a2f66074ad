"""Gather the MemSinks scores of the 8x8 acceptance (score.py outputs) into one table:
    python docs/results/mitigations_8x8/memsinks/summarize.py OUTDIR SCORE_DIR...
OUTDIR/summary.csv: per base run, the unedited standard model, the MemSinks run with sinks off and with sinks on:
targets and controls extracted (of T_n and C_n, the base run's sets and threshold), held-out NLL (nats per token),
Frechet distance, class consistency, sample NLL under the base model, and the matched-cost verdicts when the
base run's yardstick was finished (verdict_<cost>: against its random-edit cloud at the same cost, with the targets
extracted minus the cloud's and its 95% interval). OUTDIR/<run>.csv: the rows. Give verdicts-RUN (score.py
run after BASE's yardstick) in place of score-RUN where it exists: its rows are the same numbers."""

import sys
from pathlib import Path

import pandas as pd

out, dirs = Path(sys.argv[1]), [Path(d) for d in sys.argv[2:]]
KEEP = ["method", "T_n", "T_extracted", "C_n", "C_extracted", "T_token_match", "C_token_match", "heldout_nll", "fd",
        "class_consistency", "sample_nll", "cost_heldout_nll", "cost_fd", "cost_class_consistency"]
rows = []
for d in dirs:
    run = d.name.removeprefix("score-").removeprefix("verdicts-")  # verdicts-RUN: score.py after BASE's yardstick
    table = pd.read_csv(d / "mitigations.csv")
    table = table[table["method"].isin(["unedited", "memsinks", "memsinks-sinks-on"])]
    table = table.assign(method=table["method"].replace({"unedited": "standard (base run)",
                                                         "memsinks": "memsinks, sinks off",
                                                         "memsinks-sinks-on": "memsinks, sinks on"}))
    part = table[KEEP].assign(run=run)
    if (d / "verdicts.csv").is_file():
        v = pd.read_csv(d / "verdicts.csv")
        v = v[v["method"].isin(["memsinks", "memsinks-sinks-on"])] if "method" in v.columns else v.iloc[0:0]
        if len(v):
            v = v.assign(verdict=[w if d != d else f"{w} ({d:+.2f} [{lo:+.2f}, {hi:+.2f}])"  # d != d: NaN
                                  for w, d, lo, hi in zip(v["verdict"], v["diff"], v["diff_lo"], v["diff_hi"])])
            wide = v.pivot(index="method", columns="cost_measure", values="verdict")
            wide.columns = [f"verdict_{c.removeprefix('cost_')}" for c in wide.columns]
            wide.index = wide.index.map({"memsinks": "memsinks, sinks off", "memsinks-sinks-on": "memsinks, sinks on"})
            part = part.merge(wide, left_on="method", right_index=True, how="left")
    part.to_csv(out / f"{run}.csv", index=False)
    rows.append(part)
summary = pd.concat(rows, ignore_index=True)
summary.insert(0, "run", summary.pop("run"))
summary.to_csv(out / "summary.csv", index=False, float_format="%.4g")
print(summary.to_string(index=False))
