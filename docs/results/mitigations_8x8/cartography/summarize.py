"""Tables of the 8x8 acceptance of issue 14 items 3-5 (docs/iar_mitigations.md): cartography, pruning, merging,
deduplication and the over-memorization monitor, from the run directories:
    python docs/results/mitigations_8x8/cartography/summarize.py RUNS8 WORK
RUNS8 holds the base runs B-{arch}-s{seed} (with B/mitigations-cartography from `memlab iar mitigations B --tag
cartography ...` and B/monitor from `memlab iar monitor B`); WORK holds carto-*, prune-*, dedup-*, merge-*.
Writes docs/results/mitigations_8x8/{cartography,merge,dedup}/*.csv and copies the quadrant and monitor figures."""

import shutil
import sys
from pathlib import Path

import pandas as pd

from memlab.iar.mitigate import cartography as carto
from memlab.io import read_json

RUNS8, WORK = Path(sys.argv[1]), Path(sys.argv[2])
HERE = Path(__file__).resolve().parent
OUT = {k: HERE.parent / k for k in ("cartography", "merge", "dedup")}
for d in OUT.values():
    d.mkdir(exist_ok=True)
COLS = ["T_extracted", "C_extracted", "specificity", "heldout_nll", "cost_heldout_nll", "cost_sample_nll", "cost_fd",
        "cost_class_consistency"]

carto_rows, score_rows, pruned_rows, monitor_rows, dedup_rows = [], [], [], [], []
for arch in ("next-scale", "raster"):
    for seed in (0, 1):
        tag = f"{arch}-s{seed}"
        c = WORK / f"carto-{tag}"
        if (c / "metrics.json").is_file():
            per = carto.scores(carto.read_table(c), 0.9, 5)
            dup = per[per["copies"] > 1]
            rank = per["difficulty"].rank(ascending=True)
            carto_rows.append({"arch": arch, "seed": seed, "ids": len(per),
                               "forget_events_mean": per["memorization"].mean(),
                               "forget_events_max": int(per["memorization"].max()),
                               "ids_with_0_events": int((per["memorization"] == 0).sum()),
                               "duplicates_forget_events_max": int(dup["memorization"].max()),
                               "duplicates_difficulty_rank_from_easiest": ",".join(str(int(r)) for r in rank[dup.index]),
                               **{f"quadrant: {q}": int((per["quadrant"] == q).sum()) for q in carto.QUADRANTS},
                               "duplicates_in": ";".join(sorted(set(dup["quadrant"])))})
            shutil.copyfile(c / carto.FIGURE, OUT["cartography"] / f"quadrants-{tag}.png")
        for name in ("prune-mem", "prune-rand"):
            m = WORK / f"{name}-{tag}" / "metrics.json"
            if m.is_file():
                p = read_json(m)["training_set"]["prune"]
                dup_ids = set(per.loc[per["copies"] > 1, "image_id"]) if (c / "metrics.json").is_file() else set()
                pruned_rows.append({"arch": arch, "seed": seed, "by": p["by"], "ids_pruned": p["n_ids"],
                                    "rows_pruned": p["n_rows"], "planted_duplicates_pruned": len(dup_ids & set(p["ids"])),
                                    "ids": " ".join(p["ids"])})
        m = WORK / f"dedup-{tag}" / "metrics.json"
        if m.is_file():
            d = read_json(m)["training_set"]["dedup"]
            dedup_rows.append({"arch": arch, "seed": seed, **{k: v for k, v in d.items() if k not in (
                "removed_ids", "nearest_other_distance", "distance")},
                **{f"nearest_other_{k}": v for k, v in d["nearest_other_distance"].items()}})
        board = RUNS8 / f"B-{tag}" / "mitigations-cartography" / "mitigations.csv"
        if board.is_file():
            b = pd.read_csv(board)
            b = b[b["kind"].isin(["unedited", "mitigation"])]
            score_rows.append(b[["method"] + [k for k in COLS if k in b.columns]].assign(arch=arch, seed=seed))
            v = RUNS8 / f"B-{tag}" / "mitigations-cartography" / "verdicts.csv"
            if v.is_file():
                vv = pd.read_csv(v)
                vv = vv[vv["method"].isin(b["method"])] if "method" in vv.columns else vv
                vv.assign(arch=arch, seed=seed).to_csv(HERE.parent / "merge" / f"verdicts-{tag}.csv", index=False)
        mon = RUNS8 / f"B-{tag}" / "monitor"
        if (mon / "monitor.csv").is_file():
            monitor_rows.append(pd.read_csv(mon / "monitor.csv").assign(arch=arch, seed=seed))
            shutil.copyfile(mon / "monitor.png", OUT["merge"] / f"monitor-{tag}.png")

if carto_rows:
    pd.DataFrame(carto_rows).to_csv(OUT["cartography"] / "cartography.csv", index=False)
if pruned_rows:
    pd.DataFrame(pruned_rows).to_csv(OUT["cartography"] / "pruned.csv", index=False)
if dedup_rows:
    pd.DataFrame(dedup_rows).to_csv(OUT["dedup"] / "dedup.csv", index=False)
if score_rows:
    s = pd.concat(score_rows, ignore_index=True)
    s.to_csv(OUT["cartography"] / "scores.csv", index=False)  # every method: prune, dedup, merge beside unedited
    print(s.to_string(index=False))
rw = RUNS8 / "B-next-scale-s0" / "mitigations-cartography-reweight"
if (rw / "mitigations.csv").is_file():  # the one reweighting run (next-scale, seed 0)
    b = pd.read_csv(rw / "mitigations.csv")
    b[b["kind"].isin(["unedited", "mitigation"])].to_csv(OUT["cartography"] / "reweight-next-scale-s0.csv", index=False)
    pd.read_csv(rw / "verdicts.csv").query("method == 'reweight'").to_csv(
        OUT["cartography"] / "reweight-next-scale-s0_verdicts.csv", index=False)
if monitor_rows:
    pd.concat(monitor_rows, ignore_index=True).to_csv(OUT["merge"] / "monitor.csv", index=False)
