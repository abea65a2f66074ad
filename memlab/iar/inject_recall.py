"""INJ recall@k: how many of the injected units (memlab.iar.inject) each localizer ranks first.

    RUN/inject/seed-S-frac-F/        one injected model (kind iar-inject; reused when its config matches)
        config.json, model/, truth.parquet (layer, block, unit: the units whose outgoing weights changed),
        localizers/NAME/units.parquet (memlab.iar.localizers.localize_into), metrics.json (last)
    RUN/inject/inj_seeds.{parquet,csv}   recall@k per (seed, fraction, method, block)
    RUN/inject/inj.{parquet,csv}         the same over seeds: mean and t-interval
    RUN/inject/inj.png                   bars of recall@k with the intervals, beside random's k/N

k is the number of injected units: overall (block -1; ranking all N units, chance k/N) and per block b (ranking
that block's N_b units with k_b of them injected, chance k_b/N_b).
"""

from __future__ import annotations

import copy
import math
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from memlab.iar.config import InjectConfig
from memlab.iar.inject import draw_injection, inject, injected_data, state_digest
from memlab.iar.localizers import USES_LABELS, localize_into, method, recall_at_k
from memlab.io import new_figure, read_parquet, save_figure, write_json, write_parquet, write_text
from memlab.rundir import RunDir

TRUTH = "truth.parquet"


def injected_model(out: Path, base, data, fraction: float, seed: int, cfg: InjectConfig, digest: str):
    """(injected model, its RunData, EvalSets, truth table, metrics) in directory `out`: read back when it is
    finished with the same config (same base weights included), else fine-tuned from a copy of `base`."""
    from memlab.iar.checkpoint import publish

    rows, units = draw_injection(base, len(data.heldout_images), cfg.n_images, fraction, seed)
    new_data, sets = injected_data(data, rows)
    config = {"inject": {k: v for k, v in asdict(cfg).items() if k not in ("fractions", "seeds", "localizer",
                                                                            "level")},
              "fraction": fraction, "seed": seed, "base_weights": digest}
    rd, mode = RunDir.open(out, "iar-inject", flag="injection directory", continue_same=True)
    if mode == "done" and rd.same_config(config) and (out / "model" / "config.json").is_file():
        model = base.with_published(out / "model", "injected model")
        return model, new_data, sets, read_parquet(out / TRUTH, what="INJ truth"), rd.finished_metrics()
    shutil.rmtree(out / "localizers", ignore_errors=True)  # they ranked another model
    rd.start(config)
    model = copy.deepcopy(base)
    r = torch.as_tensor(rows)
    tokens = model.tokenize(data.heldout_images[r])
    metrics = inject(model, tokens, data.heldout_labels[r], units, cfg, seed)
    publish(model, out / "model")
    write_parquet(out / TRUTH, units)
    metrics.update({"fraction": fraction, "seed": seed, "heldout_rows": rows.tolist()})
    rd.finish(metrics)
    return model, new_data, sets, units, metrics


def recall_rows(table: pd.DataFrame, truth: pd.DataFrame) -> list[dict]:
    """recall@k overall (block -1) and per block, with k, the units ranked and random's expected recall."""
    rows = []
    for block, t_part, u_part in [(-1, truth, table), *((b, truth[truth["block"] == b], table[table["block"] == b])
                                                        for b in sorted(table["block"].unique()))]:
        k, n = len(t_part), len(u_part)
        true = set(zip(t_part["layer"], t_part["unit"].astype(int)))
        rows.append({"block": int(block), "k": k, "n_units": n, "chance": k / n,
                     "recall": recall_at_k(u_part, true) if k else math.nan})
    return rows


def recall_over_seeds(per_seed: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Mean recall@k over seeds with a two-sided t-interval at `level` (recall_lo, recall_hi, clipped to [0, 1];
    NaN with one seed)."""
    from scipy.stats import t as student_t

    def one(g: pd.DataFrame) -> pd.Series:
        r = g["recall"].dropna().to_numpy()
        half = student_t.ppf((1 + level) / 2, len(r) - 1) * r.std(ddof=1) / math.sqrt(len(r)) if len(r) > 1 \
            else math.nan
        mean = r.mean() if len(r) else math.nan
        return pd.Series({"recall": mean, "recall_lo": max(0.0, mean - half), "recall_hi": min(1.0, mean + half),
                          "n_seeds": len(r),
                          "k": g["k"].mean(), "n_units": g["n_units"].mean(), "chance": g["chance"].mean(),
                          "reproduced_share": g["reproduced_share"].mean(), "seconds": g["seconds"].mean()})
    keys = ["fraction", "method", "block"]
    out = per_seed.groupby(keys, sort=False)[[c for c in per_seed.columns if c not in keys]].apply(one)
    out = out.reset_index()
    out["uses_labels"] = out["method"].isin(USES_LABELS)
    out["interval"] = f"t {level:.0%} over seeds"
    return out


def run_inj(run_dir, methods, cfg: InjectConfig = InjectConfig(), out: Path | None = None,
            base_and_data=None) -> pd.DataFrame:
    """INJ on the trained run `run_dir` (final weights): for every seed and fraction an injected model, each
    localizer in `methods` ranking units for the injected images (with cfg.localizer, its seed shifted by the
    injection seed, so random scores and learned masks vary over seeds too), recall@k. -> the summary over
    seeds (one row per fraction, method, block); tables and figure written to `out` (default RUN/inject).
    Resumable: finished injected models and localizer tables are reused. `base_and_data`: the (model, RunData)
    of RUN already loaded (an external model's work directory, loaded in float32 for the fine-tune)."""
    from memlab.iar.load import load_run, load_run_data
    from memlab.iar.pipeline import fold_duplicates

    if base_and_data is None:
        RunDir.existing(run_dir, "iar-train")
    methods = list(dict.fromkeys(methods))
    for name in methods:
        method(name)  # unknown names fail before anything is written
    out = Path(run_dir) / "inject" if out is None else Path(out)
    if base_and_data is None:
        base, data = load_run(run_dir), fold_duplicates(*load_run_data(run_dir))
    else:
        base, data = base_and_data
    draw_injection(base, len(data.heldout_images), cfg.n_images, cfg.fractions[0], cfg.seeds[0])  # too few held-out
    digest, rows = state_digest(base), []
    for seed in cfg.seeds:
        for fraction in cfg.fractions:
            here = out / f"seed-{seed}-frac-{fraction:g}"
            model, data_i, sets, truth, inj = injected_model(here, base, data, fraction, seed, cfg, digest)
            loc_cfg = replace(cfg.localizer, seed=cfg.localizer.seed + seed)  # seeded methods vary with the seed
            for name in methods:
                table, m = localize_into(here / "localizers" / name, name, model, data_i, sets, loc_cfg)
                rows += [{"seed": seed, "fraction": fraction, "method": name, **r, "seconds": m.get("seconds"),
                          "reproduced_share": inj["n_reproduced"] / inj["n_images"], "stopped": inj["stopped"],
                          "epochs": inj["epochs"]} for r in recall_rows(table, truth)]
    per_seed = pd.DataFrame(rows)
    summary = recall_over_seeds(per_seed, cfg.level)
    for name, frame in (("inj_seeds", per_seed), ("inj", summary)):
        write_parquet(out / f"{name}.parquet", frame)
        write_text(out / f"{name}.csv", frame.to_csv(index=False))
    plot_recall(summary, out / "inj.png")
    write_json(out / "inj_config.json", {"methods": methods, "inject": asdict(cfg)})
    return summary


def plot_recall(summary: pd.DataFrame, path: Path) -> None:
    """Bars of overall recall@k per method, one colour per fraction, t-intervals over seeds as error bars and
    random's expected recall k/N as a dashed line over each group."""
    whole = summary[summary["block"] == -1]
    methods, fractions = list(dict.fromkeys(whole["method"])), sorted(whole["fraction"].unique())
    fig, ax = new_figure((min(12.0, max(5.0, 0.5 * len(methods) * len(fractions) + 2)), 3.6))
    width = 0.8 / len(fractions)
    for j, frac in enumerate(fractions):
        part = whole[whole["fraction"] == frac].set_index("method").loc[methods]
        x = np.arange(len(methods)) + (j - (len(fractions) - 1) / 2) * width
        err = np.vstack([part["recall"] - part["recall_lo"], part["recall_hi"] - part["recall"]])
        ax.bar(x, part["recall"], width, yerr=np.nan_to_num(err), capsize=2,
                      label=f"{frac:g} of units (k = {part['k'].iloc[0]:.0f})")
        ax.hlines(part["chance"], x - width / 2, x + width / 2, colors="k", linestyles="--", linewidth=1,
                  zorder=3, label="random, k/N" if j == 0 else None)
    ax.set_xticks(np.arange(len(methods)), methods, rotation=30, ha="right")
    ax.set_ylabel("recall@k of the injected units")
    ax.set_ylim(0, 1.05)
    ax.set_title("INJ: recall@k (bars: mean over seeds, t-interval; dashed: random, k/N)", fontsize=9)
    ax.legend(fontsize=7)
    save_figure(fig, path)

