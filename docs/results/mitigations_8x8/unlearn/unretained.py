"""Controls outside the retain set: the retain set of `memlab iar unlearn` is drawn from the training images
outside the targets, and at the final stage every one of those is a control, so C_extracted partly counts
images the retain loss trained on. This scores each finished unlearned run's final model on the controls that
were NOT in its retain set (the original model's threshold, as in the run).

    python docs/results/mitigations_8x8/unlearn/unretained.py /work/runs8/unlearn

Writes unretained.csv here: run, method, n unretained controls, extracted before and after unlearning.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from memlab.iar.config import ExtractConfig
from memlab.iar.evalsets import load as load_sets
from memlab.iar.load import load_run, load_run_data
from memlab.iar.mitigate.unlearn import retain_draw
from memlab.iar.pipeline import fold_duplicates
from memlab.iar.yardstick import make_baseline, score_model

HERE = Path(__file__).resolve().parent
METHODS = ("ga", "graddiff", "kl", "npo", "selective")


def main(root: Path) -> None:
    torch.set_num_threads(1)
    rows = []
    for base_run in sorted({json.loads((d / "config.json").read_text())["derived"]["base_run"]
                            for d in root.iterdir() if (d / "metrics.json").is_file()}):
        ref = load_run(base_run)
        data = fold_duplicates(*load_run_data(base_run))
        sets = load_sets(Path(base_run))
        base = make_baseline(ref, data, sets, ExtractConfig(), n_samples=32)
        name, before_of = Path(base_run).name, {}
        for m in METHODS:
            d = root / f"{name}-{m}"
            if not (d / "metrics.json").is_file():
                continue
            cfg = json.loads((d / "config.json").read_text())["derived"]["unlearn"]
            retain = retain_draw(len(data.train_ids), base.rows_T, cfg["retain_size"], cfg["seed"])
            outside = np.setdiff1d(base.rows_C, retain)
            sub = replace(base, rows_C=outside, metrics=None)
            key = tuple(outside)
            if key not in before_of:  # the original model on these controls (the same for every method)
                before_of[key] = score_model(ref, ref, sub)["C_extracted"]
            before = before_of[key]
            after = score_model(load_run(d), ref, sub)["C_extracted"]
            rows.append({"run": name, "method": m, "n_unretained_controls": len(outside),
                         "C_unretained_before": before, "C_unretained_after": after})
            print(rows[-1], flush=True)
    pd.DataFrame(rows).to_csv(HERE / "unretained.csv", index=False)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/work/runs8/unlearn"))
