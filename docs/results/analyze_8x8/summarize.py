"""Gather the issue-15 acceptance analyses (`memlab iar analyze`, docs/iar_analyses.md) into the CSVs of this
folder and the figures of docs/figures/analyze_8x8_*.png.

    python docs/results/analyze_8x8/summarize.py /work/runs8/analyze

Reads RUNS/G-<arch>-s<seed>-g<start>.<stage>.json (the --json output of each analysis) and the tables in
the result directory each names; writes law.csv, groups.csv, auc.csv, perturb.csv, redundancy.csv,
frequency.csv, onset.csv (one row per run, stage and table row) and report.md (the tables of the docs page)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
FIGURES = HERE.parents[1] / "figures"
TABLES = {"law": "entropy_fits", "groups": "entropy_groups", "auc": "inference_auc", "perturb": "perturb_drops",
          "frequency": "frequency", "onset": "frequency_onset"}
FIGURE_RUNS = ("G-next-scale-s0-g0", "G-raster-s0-g0")  # figures of these runs go into docs/figures ...
FIGURE_STAGES = {"memorized": ("entropy", "inference", "perturb", "frequency"), "epoch32": ("perturb", "frequency"),
                 "epoch8": ("entropy",)}  # ... at these stages


ENTROPY = ("law", "groups")  # the tables a later `--what entropy --tag law` run replaces


def result_dir(runs: Path, run: str, metrics: dict, tag: str = "") -> Path:
    epoch, name = metrics["stage"]["stage_epoch"], metrics["stage"]["stage"]
    base = runs / run if name == "final" else runs / run / "checkpoints" / f"epoch-{epoch:04d}"
    return base / (f"analyze-{tag}" if tag else "analyze")


def main(runs: Path) -> None:
    out = {k: [] for k in TABLES}
    red = []
    redone = {f.name.removesuffix(".law.json") for f in runs.glob("G-*.law.json")}
    # <run>.memref.json: the memorized stage again with --reference (tag ref, added later): it replaces <run>.mem.json
    with_ref = {f.name.split(".")[0] for f in runs.glob("G-*.memref.json")}
    for f in sorted(runs.glob("G-*.json")):
        run = f.name.split(".")[0]  # G-<arch>-s<seed>-g<start>.<mem|memref|final|eN>[.law].json
        if f.name == f"{run}.mem.json" and run in with_ref:
            continue
        law_only = f.name.endswith(".law.json")
        redo = f.name.removesuffix(".json").replace(".memref", ".mem") in redone
        m = json.loads(f.read_text())
        d = result_dir(runs, run, m, "law" if law_only else "ref" if f.name.endswith(".memref.json") else "")
        arch, seed, start = run.removeprefix("G-").rsplit("-", 2)
        cols = {"run": run, "arch": m["arch"], "seed": int(seed[1:]), "graded_start": int(start[1:]),
                "stage": m["stage"]["stage"], "stage_epoch": m["stage"]["stage_epoch"], "n_memorized": m["n_memorized"],
                "mean_edit_score": m["mean_edit_score"]}
        for key, table in TABLES.items():
            if (law_only and key not in ENTROPY) or (not law_only and key in ENTROPY and redo):
                continue  # entropy tables come from the law run where there is one
            if (d / f"{table}.csv").is_file():
                out[key].append(pd.read_csv(d / f"{table}.csv").assign(**cols))
        if not law_only and (d / "redundancy.csv").is_file():
            r = pd.read_csv(d / "redundancy.csv")
            for mem, g in r.groupby("memorized"):
                red.append({**cols, "memorized": mem, "n": len(g), "low_perturb": g["low_perturb"].mean(),
                            "low_zlib": g["low_zlib"].mean(), "redundancy_perturb": g["redundancy_perturb"].mean(),
                            "redundancy_zlib": g["redundancy_zlib"].mean()})
        if run in FIGURE_RUNS and cols["stage"] != "final":  # at the final weights every score is 1
            for png in d.glob("*.png"):
                if (law_only and png.stem != "entropy") or (not law_only and redo and png.stem == "entropy"):
                    continue  # the entropy figure of the law run where there is one
                stage = cols["stage"] if cols["stage"] != "epoch" else f"epoch{cols['stage_epoch']}"
                if png.stem not in FIGURE_STAGES.get(stage, ()):
                    continue
                shutil.copy(png, FIGURES / f"analyze_8x8_{arch}_{stage}_{png.name}")
    for key, frames in out.items():
        if frames:
            front = ["run", "arch", "seed", "graded_start", "stage", "stage_epoch"]
            df = pd.concat(frames, ignore_index=True)
            df[front + [c for c in df.columns if c not in front]].to_csv(HERE / f"{key}.csv", index=False)
    if red:
        pd.DataFrame(red).to_csv(HERE / "redundancy.csv", index=False)


def _markdown(df: pd.DataFrame) -> str:
    """A pivot table as a markdown table (index levels first); no tabulate needed."""
    df = df.reset_index()
    rows = [[str(c) for c in df.columns]] + [["" if pd.isna(v) else str(v) for v in r] for r in df.itertuples(index=False)]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows[1:]])


def _ci(df: pd.DataFrame, col: str, digits: int = 2) -> pd.Series:
    return df.apply(lambda r: f"{r[col]:.{digits}f} [{r[col + '_lo']:.{digits}f}, {r[col + '_hi']:.{digits}f}]", axis=1)


def report() -> str:
    """The markdown tables of docs/iar_analyses.md, from the CSVs of this folder."""
    law, auc = pd.read_csv(HERE / "law.csv"), pd.read_csv(HERE / "auc.csv")
    per, freq = pd.read_csv(HERE / "perturb.csv"), pd.read_csv(HERE / "frequency.csv")
    key = ["run", "stage", "stage_epoch"]
    parts = []
    law = law[(law["tokens"] == "all") & (law["stage"] != "final")].assign(fit=lambda d: _ci(d, "r") + ", slope "
                                                                           + _ci(d, "slope", 3))
    parts.append(_markdown(law.pivot_table(index=key, columns="law", values="fit", aggfunc="first")))
    a = auc[auc["stage"] != "final"].assign(v=lambda d: _ci(d, "auc"))
    parts.append(_markdown(a.pivot_table(index=key, columns="test", values="v", aggfunc="first")))
    p1 = per[(per["stage"] != "final") & (per["m"] == per.groupby(key)["m"].transform("min"))]
    p1 = p1.assign(v=lambda d: _ci(d, "drop") + " (n " + d["n"].astype(str) + ")",
                   who=lambda d: d["mode"] + ", " + d["memorized"].map({True: "memorized", False: "not memorized"}))
    parts.append(_markdown(p1.pivot_table(index=key, columns="who", values="v", aggfunc="first")))
    g = freq[(freq["split"] != "all") & (freq["stage"] != "final")].dropna(subset=["gain"])
    g = g.assign(v=lambda d: _ci(d, "gain") + " (n " + d["n"].astype(str) + ")")
    parts.append(_markdown(g.pivot_table(index=[*key, "split"], columns="copies", values="v", aggfunc="first")))
    return "\n\n".join(parts)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
    (HERE / "report.md").write_text(report() + "\n")
