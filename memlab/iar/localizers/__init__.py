"""Localizers: who says which MLP units hold the memorized targets. Each method is one file; all take the model,
the run's data (pipeline.RunData), its evaluation sets (T = targets, controls, held-out) and a LocalizerConfig,
and return the same table, one row per unit: layer, block, unit, scale (-1: the unit as a whole), score
(higher = more memorizing), plus a method's own columns (unitmem: k_star, image_id; learned masks: dropped;
oracle: uses_labels).

Two modes: the whole target set at once, or (cfg.per_image) one target at a time: then the table has a row
per (target, unit), `score` computed on that image alone ("self") and `neg`, the unit's mean score over the
other targets.

`localize_into(DIR, ...)` saves the table as DIR/units.parquet (metrics.json last), reuses a finished one with
the same config and, in the per-image mode, resumes after the last finished target.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from memlab.errors import UsageError
from memlab.iar.config import LOCALIZERS, LocalizerConfig
from memlab.iar.evalsets import EvalSets
from memlab.iar.interface import IARModel
from memlab.iar.localizers.activation import activation
from memlab.iar.localizers.common import COLUMNS, Inputs
from memlab.iar.localizers.contrast import contrast
from memlab.iar.localizers.grad_act import grad_act
from memlab.iar.localizers.hard_concrete import hard_concrete
from memlab.iar.localizers.integrated_gradients import integrated_gradients
from memlab.iar.localizers.oracle import oracle
from memlab.iar.localizers.random_units import random_scores
from memlab.iar.localizers.slimming import slimming
from memlab.iar.localizers.unitmem import unitmem
from memlab.iar.localizers.zero_out import zero_out
from memlab.io import normalize_json, read_parquet, write_parquet
from memlab.rundir import RunDir

Localizer = Callable[[IARModel, Inputs, LocalizerConfig], pd.DataFrame]
REGISTRY: dict[str, Localizer] = {
    "unitmem": unitmem, "activation": activation, "contrast": contrast, "grad-act": grad_act,
    "integrated-gradients": integrated_gradients, "zero-out": zero_out, "hard-concrete": hard_concrete,
    "slimming": slimming, "oracle": oracle, "random": random_scores}
if tuple(REGISTRY) != LOCALIZERS:  # config.LOCALIZERS names them for the torch-free CLI
    raise RuntimeError("memlab.iar.config.LOCALIZERS and the localizer registry disagree")
USES_LABELS = ("oracle",)  # methods that read what an attacker or defender would not know
UNITS = "units.parquet"


def method(name: str) -> Localizer:
    if name not in REGISTRY:
        raise UsageError(f"unknown localizer {name!r}; allowed: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def localize(name: str, model: IARModel, data, sets: EvalSets, cfg: LocalizerConfig = LocalizerConfig(),
             done: dict[str, pd.DataFrame] | None = None,
             on_target: Callable[[int, pd.DataFrame], None] | None = None) -> pd.DataFrame:
    """The unit table of localizer `name`. Per-image mode: `done` holds finished targets' tables (by
    target id), `on_target(j, table)` is called after each new one."""
    fn = method(name)
    model.eval()
    inp = Inputs.build(model, data, sets, cfg.batch_size)
    if not cfg.per_image:
        return fn(model, inp, cfg)
    tables = []
    for j, tid in enumerate(sets.target_ids):
        table = (done or {}).get(tid)
        if table is None:
            table = fn(model, inp.only(j), cfg)
            if on_target is not None:
                on_target(j, table)
        tables.append(table)
    return with_neg(tables, list(sets.target_ids))


def with_neg(tables: list[pd.DataFrame], target_ids: list[str]) -> pd.DataFrame:
    """Per-target tables (same units in the same order) -> one table with target and neg (the unit's mean
    score over the other targets; NaN with a single target)."""
    score_TxR = np.stack([t["score"].to_numpy(dtype=float) for t in tables])
    T = len(tables)
    neg_TxR = (score_TxR.sum(0, keepdims=True) - score_TxR) / (T - 1) if T > 1 else np.full_like(score_TxR, np.nan)
    return pd.concat([t.assign(neg=neg_TxR[j]).assign(target=tid)[["target", *t.columns, "neg"]]
                      for j, (t, tid) in enumerate(zip(tables, target_ids))], ignore_index=True)


def recall_at_k(table: pd.DataFrame, true: set[tuple[str, int]], k: int | None = None) -> float:
    """Share of the `true` (layer, unit) pairs among the table's top k by score (k = len(true) by default);
    units tied with the k-th score share its remaining places evenly (the expectation under random tie
    breaking, so no order of the table helps)."""
    k = len(true) if k is None else k
    if not 1 <= k <= len(table) or not true:
        raise ValueError(f"recall@k needs 1 <= k <= {len(table)} units and a non-empty truth, got k = {k}")
    score = table["score"].to_numpy(dtype=float)
    is_true = np.array([(lay, int(u)) in true for lay, u in zip(table["layer"], table["unit"])])
    kth = np.sort(score)[::-1][k - 1]
    above, tied = score > kth, score == kth
    found = is_true[above].sum() + (k - above.sum()) * is_true[tied].sum() / tied.sum()
    return float(found / len(true))


def localize_into(out: Path, name: str, model: IARModel, data, sets: EvalSets,
                  cfg: LocalizerConfig = LocalizerConfig()) -> tuple[pd.DataFrame, dict]:
    """(table, metrics) of localizer `name`, saved in directory `out` (an iar-localize result): a finished
    table with the same config is read back; otherwise computed (the per-image mode resumes from
    out/state/target-NNNN.parquet) and saved, metrics.json last."""
    method(name)
    rd, mode = RunDir.open(out, "iar-localize", flag="localizer directory", continue_same=True)
    config = normalize_json({"localizer": name, "config": asdict(cfg), "sets": sets.to_json()})
    same = rd.same_config(config)
    if mode == "done" and same and (rd.path / UNITS).is_file():
        return _read(rd.path / UNITS), rd.finished_metrics()
    if not same:
        shutil.rmtree(rd.state, ignore_errors=True)
    state = {j: rd.state / f"target-{j:04d}.parquet" for j in range(len(sets.target_ids))}
    done = {tid: read_parquet(state[j], what="partial localizer table") for j, tid in enumerate(sets.target_ids)
            if state[j].is_file()}
    rd.start(config)
    t0 = time.perf_counter()
    table = localize(name, model, data, sets, cfg, done=done,
                     on_target=lambda j, t: write_parquet(state[j], t))
    write_parquet(rd.path / UNITS, table)
    shutil.rmtree(rd.state, ignore_errors=True)
    metrics = {"localizer": name, "arch": model.arch, "per_image": cfg.per_image, "n_units": int(
        table.groupby(["layer", "unit"]).ngroups), "n_targets": len(sets.target_ids),
        "uses_labels": name in USES_LABELS, "resumed_targets": len(done),
        "seconds": time.perf_counter() - t0}  # of this pass (a resumed pass counts only its own part)
    rd.finish(metrics)
    return table, metrics


def _read(path: Path) -> pd.DataFrame:
    table = read_parquet(path, what="localizer table")
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise UsageError(f"damaged localizer table {path}: no column {missing[0]!r}")
    return table
