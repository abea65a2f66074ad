"""Ablation: scale the incoming weights of the top-k% UnitMem units by a factor, then re-run extraction
(on the original model's candidates) and re-measure quality; beside the same edit on random units
(several draws) and on the lowest-scoring units, for several k, and on one block at a time.

Every condition is one row; `done` rows (from an interrupted run with the same config) are reused, and
`on_row` is called after each new row so the caller can save progress atomically.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from memlab.errors import UsageError
from memlab.iar.config import CONTROLS, RANKS, AblateConfig  # noqa: F401  (re-exported API)
from memlab.iar.extract import ExtractConfig, extract
from memlab.iar.hooks import scaled_units
from memlab.iar.interface import IARModel
from memlab.iar.quality import QualityConfig, measure_quality
from memlab.iar.unitmem import top_count, top_mask

@dataclass
class AblationData:
    """Unique training images (tokens, labels, ids) and held-out ones (tokens, labels, images)."""

    train_tokens: torch.Tensor
    train_labels: torch.Tensor
    train_ids: np.ndarray
    heldout_tokens: torch.Tensor
    heldout_labels: torch.Tensor
    heldout_images: torch.Tensor


def select_units(units: pd.DataFrame, pct: float, mode: str, per_block: bool = False,
                 rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """Unit indices per layer: the top / bottom / a random pct% of `units` (one row per unit, from
    `unitmem.unit_scores`), over all units or within every block."""
    groups = units.groupby("block", sort=True) if per_block else [(None, units)]
    chosen = []
    for _, g in groups:
        if mode == "top":
            mask = top_mask(g["score"], pct)
        elif mode == "bottom":
            mask = top_mask(-g["score"], pct)
        elif mode == "random":
            mask = np.zeros(len(g), dtype=bool)
            mask[rng.choice(len(g), size=top_count(len(g), pct), replace=False)] = True
        else:
            raise UsageError(f"unknown selection {mode!r}; allowed: top, bottom, random")
        chosen.append(g[mask])
    picked = pd.concat(chosen)
    return {layer: np.sort(rows["unit"].to_numpy()) for layer, rows in picked.groupby("layer", sort=False)}


def evaluate(model: IARModel, data: AblationData, ext_cfg: ExtractConfig, q_cfg: QualityConfig,
             candidates: np.ndarray | None) -> tuple[dict, np.ndarray]:
    """Extraction summary + quality of the model as it is now; also the candidate rows used."""
    res = extract(model, data.train_tokens, data.train_labels, data.train_ids, data.heldout_tokens,
                  data.heldout_labels, ext_cfg, candidates=candidates)
    row = {k: v for k, v in res.summary().items() if k != "extracted_ids"}
    row.update(measure_quality(model, data.heldout_images, data.heldout_tokens, data.heldout_labels, q_cfg))
    return row, res.table["index"].to_numpy()


def conditions(cfg: AblateConfig, blocks: list[int]) -> list[dict]:
    """Every edit to run: baseline, top / controls for each k, then the top k% of one block at a time."""
    out = [{"condition": "baseline", "pct": 0.0, "draw": 0, "block": -1}]
    for pct in cfg.pcts:
        out.append({"condition": "top", "pct": pct, "draw": 0, "block": -1})
        if "bottom" in cfg.controls:
            out.append({"condition": "bottom", "pct": pct, "draw": 0, "block": -1})
        if "random" in cfg.controls:
            out += [{"condition": "random", "pct": pct, "draw": d, "block": -1} for d in range(cfg.n_random)]
    if cfg.by_block:
        out += [{"condition": "top-block", "pct": float(cfg.top_pct), "draw": 0, "block": b} for b in blocks]
    return out


def condition_key(c: dict) -> str:
    return f"{c['condition']}|{c['pct']:g}|{c['draw']}|{c['block']}"


def _selection(units: pd.DataFrame, c: dict, cfg: AblateConfig) -> dict[str, np.ndarray]:
    per_block = cfg.rank == "per-block"
    if c["condition"] == "top-block":
        return select_units(units[units["block"] == c["block"]], c["pct"], "top")
    return select_units(units, c["pct"], c["condition"], per_block, draw_rng(cfg.seed, c["pct"], c["draw"]))


def draw_rng(seed: int, pct: float, draw: int) -> np.random.Generator:
    """The generator of random draw `draw` at k = pct%: it depends only on (seed, k, draw), so a condition's
    units do not change when other conditions are added or resumed."""
    return np.random.default_rng([seed, draw, int(round(pct * 1000))])


def run_ablation(model: IARModel, units: pd.DataFrame, data: AblationData, cfg: AblateConfig = AblateConfig(),
                 ext_cfg: ExtractConfig = ExtractConfig(), q_cfg: QualityConfig = QualityConfig(),
                 done: dict[str, dict] | None = None, on_row: Callable[[dict], None] | None = None,
                 progress: bool = True) -> pd.DataFrame:
    """One row per condition: condition, pct, draw, block, n_edited, n_extracted, n_candidates,
    token_match_mean, pixel_sim_mean, threshold, nll, fd, candidates (baseline only)."""
    done = dict(done or {})
    todo = conditions(cfg, sorted(units["block"].unique().tolist()))
    base = done.get(condition_key(todo[0]))
    candidates = np.asarray(base["candidates"]) if base else None
    rows = []
    for c in tqdm(todo, desc="ablation", unit="edit", disable=not progress):
        key = condition_key(c)
        if key in done:
            rows.append(done[key])
            continue
        sel = {} if c["condition"] == "baseline" else _selection(units, c, cfg)
        with scaled_units(model, sel, cfg.factor):
            metrics, used = evaluate(model, data, ext_cfg, q_cfg, candidates)
        if candidates is None:
            candidates = used
        row = {**c, "key": key, "n_edited": int(sum(len(v) for v in sel.values())), **metrics}
        if c["condition"] == "baseline":
            row["candidates"] = candidates.tolist()
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return pd.DataFrame(rows)


def summarize(df: pd.DataFrame, top_pct: float) -> dict:
    """Headline numbers at k = top_pct: baseline, top edit, each control (random: mean and std over
    draws), and per-block edits."""
    cols = ["n_extracted", "nll", "fd", "pixel_sim_mean"]
    at = df[np.isclose(df["pct"], top_pct) & (df["block"] == -1)]
    out = {"baseline": df[df["condition"] == "baseline"][cols].iloc[0].to_dict()}
    for name, g in at.groupby("condition"):
        out[name] = {f"{c}_mean": float(g[c].mean()) for c in cols}
        out[name].update({f"{c}_std": float(g[c].std(ddof=0)) for c in cols})
        out[name]["n_draws"] = len(g)
    blocks = df[df["condition"] == "top-block"]
    out["per_block"] = {int(b): {c: float(r[c]) for c in cols}
                        for b, r in blocks.set_index("block")[cols].iterrows()}
    return out


def config_dict(cfg: AblateConfig) -> dict:
    d = asdict(cfg)
    d["controls"], d["sweep"] = list(cfg.controls), list(cfg.sweep)
    return d
