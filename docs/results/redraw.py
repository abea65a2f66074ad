"""Redraw the IAR Pareto figures of docs/figures from the stored yardstick tables, with the calibrated verdicts'
bands (the band of single random edits, with the mean curve's band inside it; docs/iar_yardstick.md):

    .venv/bin/python docs/results/redraw.py

- yardstick_8x8_B-RUN_stages.png -> docs/figures/yardstick_8x8_RUN_stages.png (both stages of each 8x8 run);
- yardstick_A_A-RUN_pareto.png (setting A, final stage);
- leaderboard_8x8_ARCH_{memorized,final}_del.png (seed 0, every localizer against the yardstick's cloud);
- mitigations_8x8.png (mitigations_8x8/summarize.py's figure, from a temporary copy of what it reads).
leaderboard_A_*_memorized_del.png are the pareto.png of the re-run in leaderboard_A/rerun/ (not drawn here)."""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

import pandas as pd

from memlab.iar.compare import matched_cost_verdicts
from memlab.iar.stage_report import StageYardstick, stage_label, stages_figure
from memlab.iar.verdict import curve_table, interventions_from_verdicts, pareto_figure
from memlab.io import save_figure, write_parquet

D = Path(__file__).resolve().parent
FIG = D.parent / "figures"
N_BOOT, SEED = 1000, 0
RUNS = ("next-scale-s0", "next-scale-s1", "raster-s0", "raster-s1")



def _fits(table: pd.DataFrame):
    verdicts, fits, methods = matched_cost_verdicts(table, N_BOOT, SEED)
    return fits, methods


def stages() -> None:
    for run in RUNS:
        table = pd.read_csv(D / "yardstick_8x8" / f"B-{run}.csv")
        rows = pd.read_csv(D / "yardstick_8x8" / f"B-{run}_stages.csv")
        found = []
        for stage in ("memorized", "final"):
            part = table[table["stage"] == stage]
            fits, _ = _fits(part)
            row = rows[rows[stage]].iloc[0]
            found.append(StageYardstick(int(row["epoch"]), stage_label(row), part, curve_table(fits),
                                        int(part["T_n"].iloc[0])))
        save_figure(stages_figure(sorted(found, key=lambda y: y.epoch)), FIG / f"yardstick_8x8_{run}_stages.png")


def setting_a() -> None:
    for run in RUNS:
        table = pd.read_csv(D / "yardstick_A" / f"A-{run}.csv")
        fits, methods = _fits(table)
        fig = pareto_figure(fits, methods, y_label=f"targets extracted (of {int(table['T_n'].iloc[0])})")
        save_figure(fig, FIG / f"yardstick_A_A-{run}_pareto.png")


def leaderboards() -> None:
    for arch in ("next-scale", "raster"):
        table = pd.read_csv(D / "yardstick_8x8" / f"B-{arch}-s0.csv")
        for stage in ("memorized", "final"):
            cloud = table[(table["stage"] == stage) & (table["method"] == "random")]
            rows = interventions_from_verdicts(pd.read_csv(D / "leaderboard_8x8" / f"B-{arch}-s0-{stage}_del_verdicts.csv"))
            fits, methods = _fits(pd.concat([cloud, rows], ignore_index=True))
            fig = pareto_figure(fits, methods, y_label="targets extracted (of 8)")
            save_figure(fig, FIG / f"leaderboard_8x8_{arch}_{stage}_del.png")


def mitigations() -> None:
    # its figure function, from the script beside its tables (a script, not a module of the package)
    spec = importlib.util.spec_from_file_location("mitigations_summarize", D / "mitigations_8x8" / "summarize.py")
    mit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mit)

    table = pd.read_csv(D / "mitigations_8x8" / "summary.csv")
    runs = [r for r in ("next-scale-s0", "raster-s0", "next-scale-s1", "raster-s1") if r in set(table["run"])]
    with tempfile.TemporaryDirectory() as tmp:
        for run in runs:
            y = pd.read_csv(D / "yardstick_8x8" / f"B-{run}.csv")
            final = y[y["stage"] == "final"]
            rows = pd.read_csv(D / "mitigations_8x8" / "all" / f"{run}_mitigations.csv")
            fits, _ = _fits(pd.concat([final[final["method"] == "random"],
                                       rows[rows["method"] != "unedited"].drop(columns=["stage"], errors="ignore")],
                                      ignore_index=True))
            base = Path(tmp) / f"B-{run}"
            (base / "yardstick").mkdir(parents=True)
            (base / "mitigations-all").mkdir()
            write_parquet(base / "yardstick" / "yardstick.parquet", final)
            curve_table(fits).to_csv(base / "mitigations-all" / "curves.csv", index=False)
            curve_table(fits).to_csv(D / "mitigations_8x8" / "all" / f"{run}_curves.csv", index=False)
        mit.figure(Path(tmp), runs, table)


if __name__ == "__main__":
    stages()
    setting_a()
    leaderboards()
    mitigations()
    print(f"redrawn under {FIG}", file=sys.stderr)
