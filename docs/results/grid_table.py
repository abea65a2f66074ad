"""One row per (N, size) of a sweep directory: seed-mean memorization ratio at the last two checkpoints,
and the trained models' train / test x0 loss at the grid time nearest t = 0.52 beside theta_star's and
theta_mem's training loss there (from the sweep's predictions). The tables committed beside the docs.

    python docs/results/grid_table.py SWEEP_DIR OUT.csv
"""

from __future__ import annotations

import glob
import json
import os
import sys

import pandas as pd

from memlab.sweep import load_table

T_SHOWN = 0.52


def _at_t(per_t: list[dict], t: float) -> dict:
    return min(per_t, key=lambda p: abs(p["t"] - t))


def grid_table(sweep_dir: str) -> pd.DataFrame:
    refs = {}
    for path in glob.glob(os.path.join(sweep_dir, "predictions", "*.json")):
        pred = json.load(open(path))
        p = _at_t(pred["per_t"], T_SHOWN)
        refs[pred["n_train"]] = (p["loss_star"], p["loss_mem"])
    out = []
    for (n, size), g in load_table(sweep_dir).groupby(["n_train", "size"]):
        cks = [json.loads(c) for c in g["checkpoints_json"]]
        per_t = [_at_t(json.loads(p), T_SHOWN) for p in g["per_t_json"]]
        star, mem = refs.get(n, (float("nan"), float("nan")))
        last = sum(c[-1]["memorization_ratio"] for c in cks) / len(cks)
        prev = sum(c[-2]["memorization_ratio"] for c in cks) / len(cks)
        out.append({"n_train": n, "size": size, "param_count": int(g["param_count"].iloc[0]),
                    "m_over_n": g["m_over_n"].iloc[0], "seeds": len(g), "steps": cks[0][-1]["step"],
                    "ratio": last, "ratio_previous_checkpoint": prev, "previous_step": cks[0][-2]["step"],
                    "change": last - prev,
                    "ratio_per_seed": " ".join(f"{r:g}" for r in g.sort_values("seed")["memorization_ratio"]),
                    "t": per_t[0]["t"], "train_x0": sum(p["train_loss"] for p in per_t) / len(per_t),
                    "test_x0": sum(p["test_loss"] for p in per_t) / len(per_t),
                    "theta_star_train_x0": star, "theta_mem_train_x0": mem})
    return pd.DataFrame(out)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python docs/results/grid_table.py SWEEP_DIR OUT.csv")
    table = grid_table(sys.argv[1])
    table.to_csv(sys.argv[2], index=False, float_format="%.4g")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
