"""Recompute the stored matched-cost verdicts of docs/results with memlab's current verdicts (calibrated against
single random edits: memlab.iar.verdict), from the stored yardstick tables, without re-running any model:

    .venv/bin/python docs/results/reverdict.py

- yardstick_8x8/B-RUN.csv holds every row of both stages (the UnitMem edits and the random cloud):
  B-RUN_{memorized,final}_verdicts.csv are recomputed from it;
- leaderboard_8x8/B-RUN-STAGE_del_verdicts.csv: every localizer's edit (cost and extraction per cost measure) is
  scored against the cloud of yardstick_8x8/B-RUN.csv at that stage (the same base run, stage and cloud: the
  UnitMem rows of both files agree to the last digit, which this script checks); the verdict counts of
  B-RUN-STAGE.csv are recounted;
- yardstick_A/A-RUN.csv (one stage, final) the same; leaderboard_A's final stage against yardstick_A's s0 cloud
  (checked the same way); its memorized stage has no stored cloud and is left as it was (said in the output);
- mitigations_8x8/all/RUN_mitigations.csv: the remedies and edits against the final-stage cloud of
  yardstick_8x8/B-RUN.csv (checked), written to RUN_verdicts.csv;
- the side experiments' verdict files under mitigations_8x8/ (cartography, memsinks, merge) against the cloud of
  their base run's stage (found by its cost range), and yardstick_demo{,_wide}_verdicts.csv from their tables;
- MemSinks' wide tables (mitigations_8x8/memsinks/RUN.csv and summary.csv: sinks off and sinks on as rows, the
  verdicts as `verdict_<cost>` strings): both rows against the final-stage cloud of yardstick_8x8/B-RUN.csv (the
  sinks-off row must get exactly the verdicts of mitigations_8x8/all/RUN_verdicts.csv, which checks the cloud; the
  earlier rule must give the stored strings' verdicts); the earlier strings are kept as `verdict_vs_mean_<cost>`,
  the verdict without the count correction as `verdict_uncorrected_<cost>`;
- then yardstick_8x8/{conditions,summary}.csv and mitigations_8x8/{summary,verdict_counts}.csv take the new
  verdicts (their other columns are unchanged; figures are not redrawn).

Every recomputed file keeps the earlier verdicts beside the current one: `verdict_vs_mean` (against the mean curve
only, the rule before session 8; for single-row interventions it equals those files' verdict exactly) and
`verdict_uncorrected` (without the continuity correction for counts, the rule of session 8; `verdict` is it since
session 10). The script asserts both against what is stored, and that a second run changes nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from memlab.iar.compare import matched_cost_verdicts
from memlab.iar.verdict import interventions_from_verdicts

D = Path(__file__).resolve().parent
N_BOOT, SEED = 1000, 0  # the YardstickConfig defaults every stored run used


def rescore(cloud: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    return matched_cost_verdicts(pd.concat([cloud, rows], ignore_index=True), N_BOOT, SEED)[0]


def check_rule(old: pd.DataFrame, new: pd.DataFrame, what: str) -> None:
    """Since session 9 every stored file holds the calibrated rule: today's verdicts must be the stored ones. A file
    of session 9 (`verdict` uncorrected, `verdict_count_corrected` beside it) must give verdict ==
    verdict_count_corrected and verdict_uncorrected == its verdict, with its interval = today's narrowed by
    count_correction; a file written since must give its own verdict and interval back."""
    key = ["method", "condition", "cost_measure"]
    m = old.merge(new, on=key, suffixes=("_old", ""))
    assert len(m) == len(old) == len(new), f"{what}: not the same rows"
    if "verdict_count_corrected" in old:
        words = (m["verdict_count_corrected"] == m["verdict"]) & (m["verdict_old"] == m["verdict_uncorrected"])
        lo, hi = m["diff_lo"] + m["count_correction"].fillna(0), m["diff_hi"] - m["count_correction"].fillna(0)
    else:
        words, lo, hi = m["verdict_old"] == m["verdict"], m["diff_lo"], m["diff_hi"]
    assert words.all(), f"{what}: {int((~words).sum())} verdicts differ from the stored rule's"
    assert np.allclose(lo, m["diff_lo_old"], equal_nan=True) and np.allclose(hi, m["diff_hi_old"], equal_nan=True), \
        f"{what}: intervals differ from the stored ones"


def check_old(old: pd.DataFrame, new: pd.DataFrame, what: str) -> None:
    """The new file's verdict_vs_mean must be the old verdict wherever the old one was computed on one row (for
    files from before session 8), and the stored calibrated verdicts must come back (check_rule)."""
    key = ["method", "condition", "cost_measure"]
    if "verdict_vs_mean" in old:  # already recomputed once (the script is idempotent)
        check_rule(old, new, what)
        old = old.assign(verdict=old["verdict_vs_mean"].fillna(old["verdict"]))
    m = old[[*key, "n_rows", "verdict"]].merge(new, on=key, suffixes=("_old", ""))
    one = m[(m["n_rows_old"] == 1) & m["verdict_vs_mean"].notna()]
    bad = one[one["verdict_old"] != one["verdict_vs_mean"]]
    assert len(m) == len(old) and not len(bad), f"{what}: {len(bad)} rows differ from the stored verdicts"


def same_cloud(cloud: pd.DataFrame, stored: pd.DataFrame, against: pd.DataFrame, what: str) -> None:
    """UnitMem's rows of `stored` (a leaderboard or mitigations verdict file) and of `against` (the yardstick's)
    must have the same costs and cloud values: then both were scored against this cloud."""
    key = ["condition", "cost_measure"]
    a = stored[stored["method"] == "unitmem"].set_index(key)[["cost", "cloud_y"]]
    b = against[against["method"] == "unitmem"].set_index(key)[["cost", "cloud_y"]]
    both = a.join(b.add_suffix("_y"), how="inner").dropna()
    assert len(both) and np.allclose(both["cost"], both["cost_y"]) and np.allclose(both["cloud_y"], both["cloud_y_y"]), \
        f"{what}: not the yardstick's cloud"


def recount(board: pd.DataFrame, v: pd.DataFrame) -> pd.DataFrame:
    """The del_<cost>_<verdict> counts of a leaderboard table from its verdicts."""
    board = board.copy()
    for col in [c for c in board.columns if c.startswith("del_") and c.rsplit("_", 1)[-1] in
                ("better", "worse", "indistinguishable")]:
        board[col] = 0
    for (method, cost, verdict), n in v.groupby(["method", "cost_measure", "verdict"]).size().items():
        col = f"del_{cost.removeprefix('cost_')}_{verdict}"
        if col in board.columns and method in board.index:
            board.loc[method, col] = n
    return board


def rescore_board(stem: Path, cloud: pd.DataFrame, yardstick_verdicts: pd.DataFrame) -> None:
    """A leaderboard's STEM_del_verdicts.csv against `cloud` (checked to be the one its yardstick used), and
    the verdict counts of STEM.csv."""
    path = stem.with_name(stem.name + "_del_verdicts.csv")
    old = pd.read_csv(path)
    same_cloud(cloud, old, yardstick_verdicts, path.name)
    new = rescore(cloud, interventions_from_verdicts(old))
    check_old(old, new, path.name)
    new.to_csv(path, index=False)
    board = stem.with_name(stem.name + ".csv")
    recount(pd.read_csv(board).set_index("method"), new).reset_index().to_csv(board, index=False)


def _counts(v: pd.DataFrame, cost: str) -> str:
    c = v[v["cost_measure"] == cost]["verdict"].value_counts().sort_index()
    return "; ".join(f"{n} {w}" for w, n in c.items())


def update_yardstick_summaries() -> None:
    """yardstick_8x8/conditions.csv (verdict_* and diff_* per condition) and summary.csv (verdicts_* counts)."""
    cond_p, summ_p = D / "yardstick_8x8" / "conditions.csv", D / "yardstick_8x8" / "summary.csv"
    cond, summ = pd.read_csv(cond_p), pd.read_csv(summ_p)
    for i, r in summ.iterrows():
        v = pd.read_csv(D / "yardstick_8x8" / f"{r['run']}_{r['stage']}_verdicts.csv")
        for col in [c for c in summ.columns if c.startswith("verdicts_")]:
            summ.loc[i, col] = _counts(v, "cost_" + col.removeprefix("verdicts_"))
        here = (cond["run"] == r["run"]) & (cond["stage"] == r["stage"])
        for col in [c for c in cond.columns if c.startswith(("verdict_", "diff_"))]:
            what, cost = col.split("_", 1)
            by = v[v["cost_measure"] == f"cost_{cost}"].set_index("condition")[what]
            cond.loc[here, col] = cond.loc[here, "condition"].map(by)
    cond.to_csv(cond_p, index=False, float_format="%.4g")
    summ.to_csv(summ_p, index=False, float_format="%.4g")


def update_mitigations_summary() -> None:
    """mitigations_8x8/summary.csv's verdict_* columns and verdict_counts.csv from the recomputed verdicts (the
    UnitMem row from the mitigations' own verdicts, integrated gradients' from the leaderboard's, as
    summarize.py takes them)."""
    here = D / "mitigations_8x8"
    summ = pd.read_csv(here / "summary.csv")
    for i, r in summ.iterrows():
        if r["kind"] == "unedited":
            continue
        if r["kind"] == "unit edit (leaderboard)":
            v = pd.read_csv(D / "leaderboard_8x8" / f"B-{r['run']}-final_del_verdicts.csv")
        else:
            v = pd.read_csv(here / "all" / f"{r['run']}_verdicts.csv")
        method, _, cond = r["method"].partition(" ")
        v = v[(v["method"] == method) & ((v["condition"] == cond) if cond else True)]
        for c, w in zip(v["cost_measure"], v["verdict"]):
            summ.loc[i, f"verdict_{c[5:]}"] = w
    summ.to_csv(here / "summary.csv", index=False)
    verdict_cols = [c for c in summ.columns if c.startswith("verdict_")]
    counts = (summ[summ["kind"] != "unedited"].melt(id_vars=["method"], value_vars=verdict_cols, var_name="cost",
                                                    value_name="verdict")
              .groupby(["method", "cost", "verdict"]).size().unstack(fill_value=0))
    counts.to_csv(here / "verdict_counts.csv")


def _stage_cloud(table: pd.DataFrame, stored: pd.DataFrame, what: str) -> pd.DataFrame:
    """The stage of the yardstick table whose cloud a stored verdict file was scored against: its sample-NLL
    cost range (cloud_cost_min/max) is the cloud's own."""
    row = stored[(stored["cost_measure"] == "cost_sample_nll") & stored["cloud_cost_min"].notna()].iloc[0]
    for stage in table["stage"].unique():
        cloud = table[(table["stage"] == stage) & (table["method"] == "random")]
        if np.allclose([cloud["cost_sample_nll"].min(), cloud["cost_sample_nll"].max()],
                       [row["cloud_cost_min"], row["cloud_cost_max"]]):
            return cloud
    raise AssertionError(f"{what}: no stage of the yardstick has this cloud")


def side_experiments() -> None:
    """The single-row verdict files of the mitigation side experiments (cartography reweighting, MemSinks'
    half-width control, the merge/prune/dedup monitor) against their base run's cloud; the demo yardsticks
    from their own tables."""
    for path in sorted((D / "mitigations_8x8").glob("*/*verdicts*.csv")):
        if path.parent.name == "all":
            continue
        run = next(r for r in ("next-scale-s0", "next-scale-s1", "raster-s0", "raster-s1") if r in path.name)
        old = pd.read_csv(path)
        cloud = _stage_cloud(pd.read_csv(D / "yardstick_8x8" / f"B-{run}.csv"), old, path.name)
        new = rescore(cloud, interventions_from_verdicts(old))
        check_old(old, new, path.name)
        new.to_csv(path, index=False)
    for name in ("yardstick_demo", "yardstick_demo_wide"):
        path = D / f"{name}_verdicts.csv"
        new = matched_cost_verdicts(pd.read_csv(D / f"{name}.csv"), N_BOOT, SEED)[0]
        check_old(pd.read_csv(path), new, path.name)
        new.to_csv(path, index=False)


MEMSINKS_ROWS = {"memsinks, sinks off": "memsinks", "memsinks, sinks on": "memsinks-sinks-on"}  # summarize.py's names


def _verdict_text(r, word: str = "verdict", lo: str = "diff_lo", hi: str = "diff_hi") -> str:
    """A verdict as summarize.py writes it into a wide table: the word, then diff [lo, hi] where there is one."""
    w, d = r[word], r["diff"]
    return w if d != d else f"{w} ({d:+.2f} [{r[lo]:+.2f}, {r[hi]:+.2f}])"  # d != d: NaN


def memsinks_tables() -> None:
    """MemSinks' wide tables with calibrated verdicts for both rows (sinks off, sinks on)."""
    here = D / "mitigations_8x8" / "memsinks"
    parts = []
    for run in ("next-scale-s0", "next-scale-s1", "raster-s0", "raster-s1"):
        path = here / f"{run}.csv"
        wide = pd.read_csv(path)
        base = wide[wide["method"] == "standard (base run)"].iloc[0]
        rows = wide[wide["method"].isin(MEMSINKS_ROWS)].copy()
        rows = rows.assign(method=rows["method"].map(MEMSINKS_ROWS), kind="mitigation",
                           cost_sample_nll=rows["sample_nll"] - base["sample_nll"])
        rows["condition"] = rows["method"]
        table = pd.read_csv(D / "yardstick_8x8" / f"B-{run}.csv")
        cloud = table[(table["stage"] == "final") & (table["method"] == "random")]
        keep = ["method", "condition", "T_n", "T_extracted", "kind", "cost_sample_nll", "cost_fd",
                "cost_class_consistency", "cost_heldout_nll"]
        new = rescore(cloud, rows[keep])
        stored = pd.read_csv(D / "mitigations_8x8" / "all" / f"{run}_verdicts.csv")
        cols = ["verdict", "cost", "y", "diff", "diff_lo", "diff_hi"]
        a = stored[stored["method"] == "memsinks"].set_index("cost_measure")[cols].sort_index()
        b = new[new["method"] == "memsinks"].set_index("cost_measure")[cols].sort_index()
        assert a["verdict"].equals(b["verdict"]) and np.allclose(a[cols[1:]], b[cols[1:]], equal_nan=True), \
            f"memsinks/{run}: sinks off is not scored as in all/{run}_verdicts.csv"
        by_name = {v: k for k, v in MEMSINKS_ROWS.items()}
        for _, r in new.iterrows():
            i = wide.index[wide["method"] == by_name[r["method"]]][0]
            cost = r["cost_measure"].removeprefix("cost_")
            old_col, mean_col = f"verdict_{cost}", f"verdict_vs_mean_{cost}"
            if mean_col not in wide:  # first recomputation: the stored strings are the earlier rule's
                wide[mean_col] = wide[old_col]
            # the stored string of the earlier rule, word and numbers, is what that rule gives today
            if isinstance(r["verdict_vs_mean"], str):
                earlier = _verdict_text(r, "verdict_vs_mean", "diff_vs_mean_lo", "diff_vs_mean_hi")
            else:  # no interval: outside the cloud or not a cost, the same under every rule
                earlier = r["verdict"]
            stored_text = str(wide.loc[i, mean_col]).replace("-0.00", "+0.00")
            assert stored_text == earlier.replace("-0.00", "+0.00"), \
                f"memsinks/{run}, {r['method']}, {cost}: {stored_text} != {earlier}"
            corrected_col, uncorrected_col = f"verdict_count_corrected_{cost}", f"verdict_uncorrected_{cost}"
            stored_word = wide.loc[i, corrected_col if corrected_col in wide else old_col]
            assert str(stored_word) == r["verdict"] or str(stored_word).startswith(r["verdict"] + " ("), \
                f"memsinks/{run}, {r['method']}, {cost}: {stored_word} is not {r['verdict']}"
            half = r["count_correction"] if r["count_correction"] == r["count_correction"] else 0.0
            wide.loc[i, old_col] = _verdict_text(r)
            narrowed = r.copy()
            narrowed["diff_lo"], narrowed["diff_hi"] = r["diff_lo"] + half, r["diff_hi"] - half
            wide.loc[i, uncorrected_col] = _verdict_text(narrowed, "verdict_uncorrected")
        wide = wide.drop(columns=[c for c in wide if c.startswith("verdict_count_corrected_")])
        wide.to_csv(path, index=False)
        parts.append(wide)
    summary = pd.concat(parts, ignore_index=True)
    summary.insert(0, "run", summary.pop("run"))
    summary.to_csv(here / "summary.csv", index=False, float_format="%.4g")


def leaderboard_a_rerun() -> None:
    """leaderboard_A/rerun (session 8, cloud stored): every verdict recomputed from its own yardstick table (the
    stored `verdict` and its interval must come out the same), and the board's counts recounted."""
    for arch in ("next-scale", "raster"):
        stem = D / "leaderboard_A" / "rerun" / f"A-{arch}-memorized"
        old = pd.read_csv(stem.with_name(stem.name + "_del_verdicts.csv"))
        table = pd.read_csv(stem.with_name(stem.name + "_del_yardstick.csv"))
        new = matched_cost_verdicts(table, N_BOOT, SEED)[0]
        check_rule(old, new, stem.name)
        new.to_csv(stem.with_name(stem.name + "_del_verdicts.csv"), index=False)
        board = stem.with_name(stem.name + ".csv")
        recount(pd.read_csv(board).set_index("method"), new).reset_index().to_csv(board, index=False)


def main() -> None:
    notes = []
    for arch in ("next-scale", "raster"):
        for s in ("s0", "s1"):
            run = f"B-{arch}-{s}"
            table = pd.read_csv(D / "yardstick_8x8" / f"{run}.csv")
            for stage in ("memorized", "final"):
                rows = table[table["stage"] == stage]
                path = D / "yardstick_8x8" / f"{run}_{stage}_verdicts.csv"
                new = matched_cost_verdicts(rows, N_BOOT, SEED)[0]
                check_old(pd.read_csv(path), new, path.name)
                new.to_csv(path, index=False)
                cloud = rows[rows["method"] == "random"]
                if (D / "leaderboard_8x8" / f"{run}-{stage}_del_verdicts.csv").is_file():
                    rescore_board(D / "leaderboard_8x8" / f"{run}-{stage}", cloud, new)
                mit = D / "mitigations_8x8" / "all" / f"{arch}-{s}_mitigations.csv"
                if stage == "final" and mit.is_file():
                    mrows = pd.read_csv(mit)
                    mrows = mrows[mrows["method"] != "unedited"]
                    mv_path = D / "mitigations_8x8" / "all" / f"{arch}-{s}_verdicts.csv"
                    old = pd.read_csv(mv_path)
                    same_cloud(cloud, old, new, mv_path.name)
                    mv = rescore(cloud, mrows.drop(columns=["stage"], errors="ignore"))
                    check_old(old, mv, mv_path.name)
                    mv.to_csv(mv_path, index=False)
    for arch in ("next-scale", "raster"):
        for s in ("s0", "s1"):
            table = pd.read_csv(D / "yardstick_A" / f"A-{arch}-{s}.csv")
            path = D / "yardstick_A" / f"A-{arch}-{s}_verdicts.csv"
            new = matched_cost_verdicts(table, N_BOOT, SEED)[0]
            check_old(pd.read_csv(path), new, path.name)
            new.to_csv(path, index=False)
            if s == "s0":
                rescore_board(D / "leaderboard_A" / f"A-{arch}-final", table[table["method"] == "random"], new)
                notes.append(f"leaderboard_A/A-{arch}-memorized: no stored cloud, verdicts left as computed before")
    side_experiments()
    memsinks_tables()
    leaderboard_a_rerun()
    update_yardstick_summaries()
    update_mitigations_summary()
    print("\n".join(notes) or "all recomputed", file=sys.stderr)


if __name__ == "__main__":
    main()
