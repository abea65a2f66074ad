"""The 8x8 localizer leaderboard as one markdown table (docs/iar_localizers.md):
    python docs/results/leaderboard_8x8/summarize.py docs/results/leaderboard_8x8
Reads B-ARCH-sSEED-{memorized,final}.csv; cells: targets left by the top 10% edit by 0; sample-NLL verdicts
better/indistinguishable/worse; FD better/worse; INJ recall@k at fraction 0.2 from the final-stage file."""

import sys
from pathlib import Path

import pandas as pd

d = Path(sys.argv[1])
files = sorted(d.glob("B-*-s*-memorized.csv"))
runs = [f.name.removesuffix("-memorized.csv") for f in files]
boards = {(r, st): pd.read_csv(d / f"{r}-{st}.csv").set_index("method") for r in runs for st in ("memorized", "final")
          if (d / f"{r}-{st}.csv").is_file()}
methods = list(next(iter(boards.values())).index)
cols = [(r, st) for st in ("memorized", "final") for r in runs if (r, st) in boards]
print("| method | " + " | ".join(f"{r.removeprefix('B-')} {st}" for r, st in cols) + " | INJ @0.2 " +
      " / ".join(r.removeprefix("B-") for r in runs) + " |")
print("|" + " --- |" * (len(cols) + 2))
for m in methods:
    cells = []
    for key in cols:
        x = boards[key].loc[m]
        cells.append(f"{x['del_T_k10_factor0']:.0f}; {x['del_sample_nll_better']:.0f}/"
                     f"{x['del_sample_nll_indistinguishable']:.0f}/{x['del_sample_nll_worse']:.0f}")
    inj = " / ".join(f"{boards[(r, 'final')].loc[m].get('inj_recall_f0.2', float('nan')):.2f}" for r in runs
                     if (r, "final") in boards)
    print(f"| {m} | " + " | ".join(cells) + f" | {inj} |")
