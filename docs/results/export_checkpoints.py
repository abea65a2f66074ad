"""Write one CSV row per (cell, seed, checkpoint) of a sweep directory: the tables committed beside the
phase-diagram docs (docs/results/*/checkpoints.csv).

    python docs/results/export_checkpoints.py SWEEP_DIR OUT.csv
"""

from __future__ import annotations

import json
import sys

import pandas as pd

from memlab.sweep import load_table

COLUMNS = ["n_train", "model", "size", "m_over_n", "param_count", "seed", "step", "memorization_ratio",
           "train_loss", "test_loss"]


def checkpoint_rows(table: pd.DataFrame) -> pd.DataFrame:
    out = []
    for _, row in table.iterrows():
        for ck in json.loads(row["checkpoints_json"]):
            out.append({"n_train": row["n_train"], "model": row["model"], "size": row["size"],
                        "m_over_n": row["m_over_n"], "param_count": row["param_count"], "seed": row["seed"],
                        "step": ck["step"], "memorization_ratio": ck["memorization_ratio"],
                        "train_loss": ck["train_loss"], "test_loss": ck["test_loss"]})
    return pd.DataFrame(out, columns=COLUMNS).sort_values(["n_train", "size", "seed", "step"])


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python docs/results/export_checkpoints.py SWEEP_DIR OUT.csv")
    checkpoint_rows(load_table(sys.argv[1])).to_csv(sys.argv[2], index=False)
