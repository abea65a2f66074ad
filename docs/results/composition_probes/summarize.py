"""Tables of docs/results/composition_probes from probe_run.py's outputs:
    python summarize.py OUT_ROOT   (OUT_ROOT/<run>/probes.csv, transfer_by_combination.csv, probes_final_units.png)
writes final_<run>.csv (the final model's rows), course.csv (over training), combos_<run>.csv, figures of
FIGURES and report.md here."""
import shutil
import sys
from pathlib import Path

import pandas as pd

from memlab.iar.analyze.probe_report import probe_figure
from memlab.io import save_figure

FIGURES = ("heldout-raster16-s0", "8x8-heldout-raster-s0", "8x8-heldout-raster-s0-quadrants")

here, root = Path(__file__).parent, Path(sys.argv[1])


def cell(r) -> str:
    return f"{r.accuracy:.2f} [{r.lo:.2f}, {r.hi:.2f}]"


lines, course = [], []
for run_dir in sorted(p for p in root.iterdir() if (p / "probes.csv").is_file()):
    run = run_dir.name
    t = pd.read_csv(run_dir / "probes.csv")
    if "pool" not in t:  # tables written before internal_view had the column: mean pooling
        t.insert(2, "pool", t.site.map(lambda site: "" if site == "reference" else "mean"))
    final = t[t.epoch == t.epoch.max()].drop(columns="epoch")
    final.to_csv(here / f"final_{run}.csv", index=False)
    if (run_dir / "transfer_by_combination.csv").is_file() and not run.endswith("-quadrants"):
        shutil.copy(run_dir / "transfer_by_combination.csv", here / f"combos_{run}.csv")  # mean pooling
    if run in FIGURES:
        shown = final[final.site.isin(["units", "reference"])]
        save_figure(probe_figure(shown, title=f"{run}: final model, MLP units"), here / f"probes_{run}.png", dpi=80)
    lines += [f"### {run} (final model, epoch {t.epoch.max()})", "",
              "Real probe accuracy [95% Wilson] per block (units) and for the references; control = the shuffled-"
              "factor probe at the best block; chance = majority rate of the scored images.", ""]
    blocks = sorted(final[final.site == "units"].block.unique())
    head = ["labels", "split", "factor", "pixels", "recon", *[b.split(".")[1] for b in blocks], "control", "chance", "n"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    real = final[final.probe == "real"]
    for (labels, split, factor), g in real[real.site == "units"].groupby(["labels", "split", "factor"], sort=False):
        ref = real[(real.site == "reference") & (real.split == split) & (real.factor == factor)].set_index("block")
        best = g.loc[g.accuracy.idxmax()]
        ctl = final[(final.site == "units") & (final["labels"] == labels) & (final.split == split) &
                    (final.factor == factor) & (final.probe == "control") & (final.block == best.block)].iloc[0]
        row = [labels, split, factor, *(f"{ref.loc[b].accuracy:.2f}" if b in ref.index else "" for b in
                                       ("pixels", "reconstruction")),
               *(cell(g.set_index("block").loc[b]) for b in blocks), f"{ctl.accuracy:.2f}", f"{best.chance:.2f}",
               str(int(best.n))]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    u = t[(t.site == "units") & (t.probe == "real")]
    best = u.groupby(["epoch", "labels", "split", "factor"]).accuracy.max().rename("best_block_accuracy")
    if t.epoch.nunique() > 1:
        course.append(best.reset_index().assign(run=run))
pd.concat(course).to_csv(here / "course.csv", index=False)
(here / "report.md").write_text("\n".join(lines))
