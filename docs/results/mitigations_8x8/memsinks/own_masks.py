"""Where the memorized content of a MemSinks run sits: teacher-forced top-1 accuracy on the attack's ranking
positions and exact greedy reproduction from the attack's prefix, for the planted duplicates (T) and the images
seen once, with the sinks off, on (every sink at its expected gate) and with each image's own training mask:
    python docs/results/mitigations_8x8/memsinks/own_masks.py OUT.csv MEMSINKS_RUN...
(no extraction threshold here: the yardstick rows are score.py's)."""

import sys
from pathlib import Path

import pandas as pd
import torch

from memlab.iar.batching import teacher_forced_scores, tokenize_all
from memlab.iar.load import load_run, load_run_data
from memlab.iar.mitigate.memsinks import sinks, training_masks
from memlab.iar.pipeline import fold_duplicates

rows = []
for run in map(Path, sys.argv[2:]):
    model = load_run(run)
    data = fold_duplicates(*load_run_data(run))
    tokens = tokenize_all(model, data.train_images, 64)
    ids = [str(i) for i in data.train_ids]
    prefix = model.default_prefix()
    pos = model.ranking_positions(prefix).cpu()
    for group, keep in (("planted duplicates", data.copies > 1), ("seen once", data.copies == 1)):
        rows_k = torch.as_tensor(keep.nonzero()[0])
        t, y, i = tokens[rows_k], data.train_labels[rows_k], [ids[r] for r in rows_k.tolist()]
        for mode in ("off", "on", "own mask"):
            ctx = training_masks(model, i) if mode == "own mask" else sinks(model, mode)
            with torch.no_grad(), ctx:
                acc, _ = teacher_forced_scores(model, t, y, pos, len(t))
                gen = model.continue_greedy(t, y, prefix)
            rows.append({"run": run.name, "images": group, "n": len(t), "sinks": mode,
                         "acc_ranking_positions": float(acc.mean()),
                         "reproduced_exactly": int((gen == t).all(1).sum())})
table = pd.DataFrame(rows)
table.to_csv(sys.argv[1], index=False, float_format="%.4g")
print(table.to_string(index=False))
