"""Memorization time at lower ratio levels than `memlab phase time`'s 0.5 (which the largest N never reach
in 8,000 steps), and the t ~ N^a fit per width, from memlab's own crossing and fit functions.

    python docs/results/mlp_width_n/onset.py SWEEP_DIR OUT.csv
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd

from memlab.sweep import load_table
from memlab.sweep.timescales import crossing_step, fit_power_law

LEVELS = (0.1, 0.25, 0.5)


def onsets(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    cells, fits = [], []
    for (size, n), g in table.groupby(["size", "n_train"]):
        curves = [json.loads(c) for c in g["checkpoints_json"]]
        steps = np.array([c["step"] for c in curves[0]], float)
        mean = np.mean([[c["memorization_ratio"] for c in cur] for cur in curves], axis=0)
        for level in LEVELS:
            cross = crossing_step(steps, mean, level)
            cells.append({"size": size, "n_train": n, "level": level, "t": cross["step"],
                          "bracket": cross["bracket"], "status": cross["status"]})
    cells = pd.DataFrame(cells)
    for (size, level), g in cells.groupby(["size", "level"]):
        ok = g[g["status"] == "crossed"]
        fit = fit_power_law(ok["n_train"], ok["t"])
        fits.append({"size": size, "level": level, "n_crossed": fit["n_points"], "n_values": list(ok["n_train"]),
                     "exponent": fit["exponent"], "interval": fit["interval"], "r2": fit["r2"],
                     "censored_n": list(g[g["status"] != "crossed"]["n_train"])})
    return cells, pd.DataFrame(fits)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python docs/results/mlp_width_n/onset.py SWEEP_DIR OUT.csv")
    cells, fits = onsets(load_table(sys.argv[1]))
    cells.to_csv(sys.argv[2], index=False)
    pd.set_option("display.width", 200)
    print(cells.to_string(index=False))
    print(fits.to_string(index=False))
