"""Issue 14's one table and one figure: every mitigation of the 8x8 setting, scored on its base run's
yardstick (`memlab iar mitigations BASE --tag all ...`), beside UnitMem's top-k edits (BASE/yardstick) and
integrated gradients' (the best localizer of docs/iar_localizers.md; its rows from
docs/results/leaderboard_8x8, scored on the same base models, sets and random cloud in an earlier session).

    python docs/results/mitigations_8x8/summarize.py RUNS_DIR [next-scale-s0 raster-s0 ...]

RUNS_DIR holds B-<arch>-s<seed>/mitigations-all. Writes, next to this file: all/<run>_{mitigations,verdicts}.csv,
summary.csv (one row per run and method: T and C extracted, the costs, the verdict on each cost at matched
cost, the compute), verdict_counts.csv, and mitigations_8x8.png (targets extracted against sample-NLL and FD
cost, one column per run: the random cloud, its monotone fit and band, every method)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd

from memlab.io import new_figure, read_json, save_figure
from memlab.iar.verdict import draw_pareto_panel

HERE = Path(__file__).resolve().parent
LEADERBOARD = HERE.parent / "leaderboard_8x8"
COSTS = ("cost_sample_nll", "cost_fd", "cost_class_consistency", "cost_heldout_nll")
HEADLINE = "k=10%, factor 0"  # the unit-edit condition reported beside the mitigations (fixed in advance)


def edit_rows(board: pd.DataFrame, verdicts: pd.DataFrame, run: str) -> list[dict]:
    rows = []
    uni = verdicts[(verdicts["method"] == "unitmem") & (verdicts["condition"] == HEADLINE)]
    k = board[(board["kind"] == "unit edit")]
    k = k[(k["k"] == 10) & (k["factor"] == 0)].iloc[0]
    rows.append({"method": f"unitmem {HEADLINE}", "kind": "unit edit", **{c: k[c] for c in ("T_extracted", "C_extracted", *COSTS)},
                 **{f"verdict_{c[5:]}": v for c, v in zip(uni["cost_measure"], uni["verdict"])}})
    lb = LEADERBOARD / f"B-{run}-final_del_verdicts.csv"
    if lb.is_file():
        ig = pd.read_csv(lb)
        ig = ig[(ig["method"] == "integrated-gradients") & (ig["condition"] == HEADLINE)]
        row = {"method": f"integrated-gradients {HEADLINE}", "kind": "unit edit (leaderboard)",
               "T_extracted": float(ig["y"].dropna().iloc[0]) if ig["y"].notna().any() else float("nan")}
        for c, cost, v in zip(ig["cost_measure"], ig["cost"], ig["verdict"]):
            row[c], row[f"verdict_{c[5:]}"] = cost, v
        rows.append(row)
    return rows


def summarize(runs_dir: Path, runs: list[str]) -> pd.DataFrame:
    out = HERE / "all"
    out.mkdir(exist_ok=True)
    rows = []
    for run in runs:
        d = runs_dir / f"B-{run}" / "mitigations-all"
        board, verdicts = pd.read_csv(d / "mitigations.csv"), pd.read_csv(d / "verdicts.csv")
        for name in ("mitigations", "verdicts", "curves"):
            shutil.copyfile(d / f"{name}.csv", out / f"{run}_{name}.csv")
        unedited = board[board["kind"] == "unedited"].iloc[0]
        rows.append({"run": run, "method": "unedited", "kind": "unedited",
                     **{c: unedited[c] for c in ("T_extracted", "C_extracted", *COSTS)}})
        rows += [{"run": run, **r} for r in edit_rows(board, verdicts, run)]
        for _, m in board[board["kind"] == "mitigation"].iterrows():
            v = verdicts[verdicts["method"] == m["method"]]
            metrics = read_json(Path(m["run"]) / "metrics.json")
            epochs = ((metrics.get("final") or {}).get("model") or {}).get("epoch")
            rows.append({"run": run, "method": m["method"], "kind": "mitigation",
                         **{c: m[c] for c in ("T_extracted", "C_extracted", *COSTS)},
                         **{f"verdict_{c[5:]}": w for c, w in zip(v["cost_measure"], v["verdict"])},
                         "compute_seconds": metrics.get("seconds"), "compute_steps": metrics.get("steps"),
                         "compute_epochs": epochs if metrics.get("steps") is None else None})  # unlearning: steps
    table = pd.DataFrame(rows)
    table.to_csv(HERE / "summary.csv", index=False)
    verdict_cols = [c for c in table.columns if c.startswith("verdict_")]
    counts = (table[table["kind"] != "unedited"].melt(id_vars=["method"], value_vars=verdict_cols,
                                                       var_name="cost", value_name="verdict")
              .groupby(["method", "cost", "verdict"]).size().unstack(fill_value=0))
    counts.to_csv(HERE / "verdict_counts.csv")
    figure(runs_dir, runs, table)
    return table


def figure(runs_dir: Path, runs: list[str], table: pd.DataFrame) -> None:
    costs = ("cost_sample_nll", "cost_fd")
    fig, axes = new_figure((3.6 * len(runs) + 2.5, 3.2 * len(costs)), len(costs), len(runs), squeeze=False)
    for j, run in enumerate(runs):
        d = runs_dir / f"B-{run}"
        cloud = pd.read_parquet(d / "yardstick" / "yardstick.parquet")
        cloud = cloud[cloud["method"] == "random"]
        curves = pd.read_csv(d / "mitigations-all" / "curves.csv")
        here = table[(table["run"] == run) & (table["kind"] != "unedited")]
        for i, cost in enumerate(costs):
            ax = axes[i][j]
            points = {m: ([c], [t]) for m, c, t in zip(here["method"], here[cost], here["T_extracted"])
                      if pd.notna(c) and pd.notna(t)}
            draw_pareto_panel(ax, cost, curves[curves["cost_measure"] == cost], cloud[cost], cloud["T_extracted"], points)
            ax.set_title(f"{run}", fontsize=9)
            if j == 0:
                ax.set_ylabel("targets extracted (of 8)")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7)
    fig.suptitle("8x8 setting: every mitigation and the best unit edits against random edits at matched cost")
    save_figure(fig, HERE / "mitigations_8x8.png")


if __name__ == "__main__":
    runs = sys.argv[2:] or ["next-scale-s0", "raster-s0", "next-scale-s1", "raster-s1"]
    t = summarize(Path(sys.argv[1]), [r for r in runs if (Path(sys.argv[1]) / f"B-{r}" / "mitigations-all" /
                                                              "metrics.json").is_file()])
    print(t.drop(columns=[c for c in t.columns if c.startswith("verdict_")]).round(3).to_string())
