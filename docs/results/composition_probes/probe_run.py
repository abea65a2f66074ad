"""Internal view (memlab.iar.analyze.probes.internal_view) of one run at some saved epochs and the final model:
    python probe_run.py RUN OUT [EPOCH,EPOCH,...] [mean|quadrants]
writes OUT/probes.csv (every row, with its epoch), OUT/summary.json, OUT/probes_final_units.png and, when the run
holds combinations out, OUT/transfer_by_combination.csv (final model, both label passes, mean pooling)."""
import json
import sys
from pathlib import Path

import pandas as pd
import torch

from memlab.iar.analyze.probe_combos import transfer_by_combination
from memlab.iar.analyze.probe_report import probe_figure, probe_summary
from memlab.iar.analyze.probes import internal_view
from memlab.iar.data import load_images
from memlab.iar.load import load_run, read_run_config, run_stage
from memlab.io import save_figure

torch.set_num_threads(1)
run, out = Path(sys.argv[1]), Path(sys.argv[2])
epochs = [int(e) for e in sys.argv[3].split(",")] if len(sys.argv) > 3 and sys.argv[3] else []
pool = sys.argv[4] if len(sys.argv) > 4 else "mean"
sites = ("units", "mlp_in") if pool == "mean" else ("units",)
out.mkdir(parents=True, exist_ok=True)
s = load_images(read_run_config(run).data)
tables = []
for epoch in epochs + [None]:
    model = load_run(run, run_stage(run, checkpoint=epoch) if epoch else None)
    t = internal_view(model, s, folds=5, seed=0, sites=sites, pool=pool)
    t.insert(0, "epoch", epoch if epoch else read_run_config(run).train.epochs)
    tables.append(t)
    print(f"epoch {t.epoch.iloc[0]} done", file=sys.stderr, flush=True)
    pd.concat(tables).to_csv(out / "probes.csv", index=False)
final = tables[-1]
save_figure(probe_figure(final[final.site.isin(["units", "reference"])], title=f"{run.name}: final model, MLP units"),
            out / "probes_final_units.png")
(out / "summary.json").write_text(json.dumps(probe_summary(final.drop(columns="epoch")), indent=1))
if len(s.factors.novel_NxF):
    by = pd.concat([transfer_by_combination(model, s, labels=mode) for mode in ("own", "constant")])
    by.to_csv(out / "transfer_by_combination.csv", index=False)
