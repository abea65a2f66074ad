"""A comparison on the yardstick (`memlab iar ablate RUN --localizer NAME`): base run -> evaluation sets
(fixed in the run) -> the localizer's top-k edits and a random-edit cloud -> one yardstick row per
condition -> verdicts at matched cost -> tables and Pareto figures in the output directory:

  yardstick.parquet / .csv   one row per condition (method, k, factor, draw, every metric and cost)
  verdicts.csv               one row per localizer edit x cost measure (matched-cost difference, verdict)
  curves.csv, pareto.png     the random cloud's monotone curves with their bands, every method's points
  state/rows.json            finished conditions with the config they belong to (resume)
  metrics.json               the unedited model's metrics, the sets, and the verdicts; written last
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Callable

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from tqdm.auto import tqdm

from memlab.iar import evalsets
from memlab.iar.ablate import draw_rng, select_units
from memlab.iar.batching import tokenize_all
from memlab.iar.config import ExtractConfig, YardstickConfig
from memlab.iar.extract import extract
from memlab.iar.interface import IARModel
from memlab.iar.interventions import ScaleUnits
from memlab.iar.verdict import curve_table, fit_clouds, pareto_figure, verdict_table
from memlab.iar.yardstick import COSTS, make_baseline, score_edit, score_edits
from memlab.io import normalize_json, read_json, save_figure, write_json, write_parquet, write_text
from memlab.rundir import RunDir


def conditions(cfg: YardstickConfig, methods: list[str] | None = None) -> list[dict]:
    """Each localizer's top-k edits at every factor (`methods`, default the config's localizer), then the random
    cloud (n_draws per k and factor), which every method is compared with."""
    top = [{"method": m, "k": float(k), "factor": float(f), "draw": 0}
           for m in (methods or [cfg.localizer]) for f in cfg.factors for k in cfg.ks]
    cloud = [{"method": "random", "k": float(k), "factor": float(f), "draw": d}
             for f in cfg.factors for k in cfg.cloud_ks for d in range(cfg.n_draws)]
    return top + cloud


def _key(c: dict) -> str:
    return f"{c['method']}|{c['k']:g}|{c['factor']:g}|{c['draw']}"


def _selection(units: dict[str, pd.DataFrame], c: dict, seed: int) -> dict[str, np.ndarray]:
    if c["method"] == "random":  # every table lists the same units
        return select_units(next(iter(units.values())), c["k"], "random", rng=draw_rng(seed, c["k"], c["draw"]))
    return select_units(units[c["method"]], c["k"], "top")


def choose_sets(model: IARModel, data, run_dir, ext_cfg: ExtractConfig, targets=(), seed: int = 0):
    """The run's evaluation sets: saved ones, else chosen now from what the unedited model extracts when
    every training image is attacked, and saved in the run."""
    saved = evalsets.load(run_dir) if run_dir is not None else None
    if saved is not None and (not targets or saved.target_ids == tuple(targets)):
        return saved
    bs = ext_cfg.batch_size
    cfg = ExtractConfig(**{**asdict(ext_cfg), "n_candidates": len(data.train_ids)})
    res = extract(model, tokenize_all(model, data.train_images, bs), data.train_labels, data.train_ids,
                  tokenize_all(model, data.heldout_images, bs), data.heldout_labels, cfg)
    sets = evalsets.choose(data.train_ids, data.copies, res.summary()["extracted_ids"], len(data.heldout_images),
                           targets or None, seed)
    return evalsets.fix(run_dir, sets) if run_dir is not None else sets


def run_comparison(model: IARModel, data, units: pd.DataFrame | dict[str, pd.DataFrame], cfg: YardstickConfig,
                   ext_cfg: ExtractConfig, out: RunDir, run_dir=None, classifier: Callable[[], object] | None = None,
                   localizer_seconds: float | dict[str, float] = 0.0,
                   units_digest: str = "", progress: bool = True,
                   show: Callable[[str, pd.DataFrame], None] | None = None, stage: dict | None = None) -> dict:
    """Score every condition (resuming finished ones), then the verdicts; -> metrics.json's content.
    `units`: the localizer's ranked unit table, or {method: table} to compare several localizers with one
    random cloud (`localizer_seconds` then per method too).
    `classifier`: called once the sets are chosen (so bad input has trained nothing) for the class-consistency
    classifier; None leaves class consistency unmeasured."""
    units = units if isinstance(units, dict) else {cfg.localizer: units}
    seconds_of = localizer_seconds if isinstance(localizer_seconds, dict) else {m: localizer_seconds for m in units}
    sets = choose_sets(model, data, run_dir, ext_cfg, cfg.targets, cfg.seed)
    classifier = classifier() if classifier is not None else None
    base = make_baseline(model, data, sets, ext_cfg, cfg.n_samples, cfg.pca_dim, cfg.seed, classifier)
    numbers = {k: v for k, v in asdict(cfg).items() if k not in cfg.SPEED_ONLY}
    config = normalize_json({"yardstick": numbers, "extract": asdict(ext_cfg), "units": units_digest,
                             "sets": sets.to_json()})
    rows_file = out.state / "rows.json"
    saved = read_json(rows_file) if rows_file.is_file() else None
    done = dict(saved["rows"]) if isinstance(saved, dict) and saved.get("config") == config \
        and isinstance(saved.get("rows"), dict) else {}
    out.start(config)
    every = conditions(cfg, list(units))
    pending = [c for c in every if _key(c) not in done]
    bar = tqdm(total=len(every), initial=len(every) - len(pending), desc="yardstick", unit="edit",
               disable=not progress)
    for i in range(0, len(pending), cfg.edits_per_pass):  # E edits stacked on the batch axis per evaluation
        group, edits, seconds = pending[i:i + cfg.edits_per_pass], [], []
        for c in group:
            t0 = time.perf_counter()
            sel = _selection(units, c, cfg.seed)
            # the intervention's compute: choosing its units (the localizer's pass for its edits)
            seconds.append(seconds_of.get(c["method"], 0.0) + time.perf_counter() - t0)
            edits.append(ScaleUnits(sel, c["factor"], params={"method": c["method"], "k": c["k"], "draw": c["draw"]}))
        scored = score_edits(model, edits, base, classifier, seconds, cfg.rows_per_pass) if len(edits) > 1 \
            else [score_edit(model, edits[0], base, classifier, seconds[0])]
        done.update({_key(c): {"key": _key(c), **r} for c, r in zip(group, scored)})
        write_json(rows_file, {"config": config, "rows": done})
        bar.update(len(group))
    bar.close()
    rows = [done[_key(c)] for c in every]
    table = pd.DataFrame(rows).assign(**(stage or {}))
    summary = verdicts_and_figure(table, base, cfg, out)
    write_parquet(out.path / "yardstick.parquet", table)
    write_text(out.path / "yardstick.csv", table.to_csv(index=False))
    metrics = {"arch": model.arch, "localizer": ",".join(units), "stage": stage or {}, "sets": sets.to_json(),
               "baseline": base.metrics, "threshold": base.threshold, "prefix": base.prefix, **summary}
    out.finish(metrics)
    if show:
        cols = ["method", "k", "factor", "n_edited", "T_extracted", "C_extracted", "specificity", "cost_sample_nll",
                "cost_fd", "cost_class_consistency"]
        show(f"yardstick ({model.arch}): {', '.join(units)} edits (T = {len(sets.target_ids)}, C = "
             f"{len(sets.control_ids)})", table[table["method"] != "random"][cols])
        v = pd.DataFrame(summary["verdicts"])
        v["cell"] = [(f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}] {w}" if np.isfinite(d) else w)
                     + (f" (uncorrected: {wu})" if wu != w else "")
                     for d, lo, hi, w, wu in zip(v["diff"], v["diff_lo"], v["diff_hi"], v["verdict"],
                                                 v["verdict_uncorrected"])]
        grid = v.pivot(index=["method", "condition"], columns="cost_measure", values="cell").reset_index()
        grid.columns = [c.removeprefix("cost_") for c in grid.columns]
        show("targets extracted minus the random cloud at the same cost (95% interval), and the verdict", grid)
    return metrics


NOT_A_COST = "not a cost here (falls as edits grow)"


def cost_direction(cloud: pd.DataFrame, cost: str) -> float:
    """Spearman correlation, over the random cloud, between a cost measure and the edit's strength
    (k x (1 - factor)). A cost must grow with it; in over-confident models the held-out NLL falls instead,
    and a monotone fit in it would give meaningless verdicts."""
    strength = cloud["k"] * (1 - cloud["factor"])
    if cloud[cost].nunique() < 2 or strength.nunique() < 2:
        return float("nan")  # a constant measure says nothing about cost (and spearmanr would warn)
    return float(spearmanr(strength, cloud[cost], nan_policy="omit").statistic)


def matched_cost_verdicts(table: pd.DataFrame, n_boot: int, seed: int):
    """(verdicts, fits, the non-random rows as scored) of every non-random row of a yardstick table against
    its random rows (the cloud). Rows with a `condition` keep it (a mitigation's run); edit rows are named by
    k and factor. A cost that falls as edits grow gets NOT_A_COST rows instead of a fit."""
    frame = table.rename(columns={"T_extracted": "y"})
    named = [f"k={k:g}%, factor {f:g}" for k, f in zip(frame["k"], frame["factor"])]
    given = frame["condition"] if "condition" in frame else pd.Series([None] * len(frame), index=frame.index)
    frame["condition"] = [g if isinstance(g, str) and g else n for g, n in zip(given, named)]
    cloud, methods = frame[frame["method"] == "random"], frame[frame["method"] != "random"]
    measured = [c for c in COSTS if table[c].notna().any()]
    direction = {c: cost_direction(cloud, c) for c in measured}
    costs = [c for c in measured if direction[c] > 0]
    y_max = float(table["T_n"].max()) if "T_n" in table and table["T_n"].notna().any() else None
    fits = fit_clouds(cloud, costs, n_boot=n_boot, seed=seed, y_max=y_max) if costs else {}
    verdicts = verdict_table(fits, methods) if fits else pd.DataFrame()
    falling = [{"method": m, "condition": c, "cost_measure": cost, "diff": float("nan"), "diff_lo": float("nan"),
                "diff_hi": float("nan"), "verdict": NOT_A_COST, "verdict_uncorrected": NOT_A_COST,
                "cost_rank_correlation": direction[cost]}
               for cost in measured if cost not in costs for m, c in zip(methods["method"], methods["condition"])]
    verdicts = pd.concat([verdicts.assign(cost_rank_correlation=verdicts["cost_measure"].map(direction))
                          if len(verdicts) else verdicts, pd.DataFrame(falling)], ignore_index=True)
    return verdicts, fits, methods


def verdicts_and_figure(table: pd.DataFrame, base, cfg: YardstickConfig, out: RunDir) -> dict:
    """Verdicts at matched cost (matched_cost_verdicts) in out/verdicts.csv, curves.csv and pareto.png; -> the
    verdict records and counts."""
    verdicts, fits, methods = matched_cost_verdicts(table, cfg.n_boot, cfg.seed)
    write_text(out.path / "verdicts.csv", verdicts.to_csv(index=False))
    write_text(out.path / "curves.csv", (curve_table(fits) if fits else pd.DataFrame()).to_csv(index=False))
    if fits:
        fig = pareto_figure(fits, methods, y_label=f"targets extracted (of {len(base.rows_T)})")
        save_figure(fig, out.path / "pareto.png")
    counts = {col: verdicts.groupby(["cost_measure", col]).size().unstack(fill_value=0).to_dict(orient="index")
              for col in ("verdict", "verdict_uncorrected")}
    return {"verdicts": verdicts.to_dict(orient="records"), "verdict_counts": counts["verdict"],
            "verdict_counts_uncorrected": counts["verdict_uncorrected"]}
