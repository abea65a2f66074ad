"""Summarize the IAR training-defaults review (docs/iar_models.md, "Training stages and the defaults"):
one row per run directory given, from its config.json and metrics.json.
    python docs/results/iar_defaults/summarize.py RUN... > docs/results/iar_defaults/review.csv"""

import json
import math
import sys
from pathlib import Path

import pandas as pd

rows = []
for run in map(Path, sys.argv[1:]):
    cfg, m = json.loads((run / "config.json").read_text()), json.loads((run / "metrics.json").read_text())
    t, hist = cfg["train"], m["model"]
    mem = m.get("memorized_epoch")
    at_mem = hist[mem - 1] if mem else {}
    best = min(hist, key=lambda r: r["heldout_nll"])
    rows.append({"arch": t["arch"], "lr": t["lr"], "weight_decay": t["weight_decay"], "epochs": t["epochs"],
                 "uniform_nll": math.log(t["codebook_size"]), "train_acc": hist[-1]["train_acc"],
                 "target_acc": hist[-1]["target_acc"], "train_nll": hist[-1]["train_nll"],
                 "heldout_nll": hist[-1]["heldout_nll"], "min_heldout_nll": best["heldout_nll"],
                 "min_heldout_nll_epoch": best["epoch"], "memorized_epoch": mem,
                 "heldout_nll_at_memorized": at_mem.get("heldout_nll"), "train_acc_at_memorized": at_mem.get("train_acc"),
                 "tokenizer_heldout_mse": m["final"]["tokenizer"].get("heldout_mse")})
sys.stdout.write(pd.DataFrame(rows).to_csv(index=False, float_format="%.4g"))
