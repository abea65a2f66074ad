"""UnitMem: how selectively each MLP unit fires for one training image.

mu_{k,u} = mean over A augmentations of |activation_u|, averaged over the token positions of one scale
(next-scale models: every scale separately; others: the whole sequence) in a teacher-forced pass on
training image k. With k* = argmax_k mu_{k,u} and mu_rest the mean (or median) of mu_{k,u} over k != k*:
UnitMem(u) = (mu_{k*,u} - mu_rest) / (mu_{k*,u} + mu_rest), in [0, 1] (0 when the unit never fires).

The pass streams over batches and keeps only the per-image per-unit sums (K x S x U per layer). The tokens
of every augmentation of every image (K x A x L) depend only on the frozen tokenizer, the augmentation config
and the images, so a `token_cache` directory keeps them for later passes over the same run (any checkpoint).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from memlab.errors import UsageError
from memlab.iar.config import RESTS, AugmentConfig, UnitMemConfig  # noqa: F401  (re-exported API)
from memlab.iar.hooks import capture
from memlab.iar.interface import IARModel
from memlab.iar.token_cache import AugmentedTokens
from memlab.io import error_reason, normalize_json, read_npz, save_npz, to_json


class UnitStats:
    """Forward-hook callback that adds |activation| averaged per scale into per-image sums. Set `.index`
    (the batch's image indices, long B) before each forward pass."""

    def __init__(self, model: IARModel, n_images: int):
        self.n_images = n_images
        slices = model.scale_slices()
        self.seq_len = model.seq_len
        self.avg_SxL = torch.zeros(len(slices), self.seq_len)
        for s, sl in enumerate(slices):
            self.avg_SxL[s, sl] = 1.0 / (sl.stop - sl.start)
        self.sums: dict[str, torch.Tensor] = {}
        self.index: torch.Tensor | None = None

    def __call__(self, name: str, act_BxLxU: torch.Tensor) -> None:
        a_BxLxU = act_BxLxU.abs()
        if a_BxLxU.shape[1] < self.seq_len:
            raise ValueError(f"{name}: activation has {a_BxLxU.shape[1]} positions, fewer than the "
                             f"{self.seq_len} tokens")
        if len(self.avg_SxL) == 1:
            per_BxSxU = a_BxLxU.mean(dim=1, keepdim=True)
        else:  # extra leading positions (class / start tokens) are not part of any scale
            per_BxSxU = torch.matmul(self.avg_SxL.to(a_BxLxU.dtype), a_BxLxU[:, -self.seq_len:])
        if name not in self.sums:
            self.sums[name] = torch.zeros(self.n_images, per_BxSxU.shape[1], per_BxSxU.shape[2],
                                          dtype=torch.float64)
        self.sums[name].index_add_(0, self.index, per_BxSxU.to(torch.float64).cpu())  # the model may be on a GPU


def check_image_count(K: int) -> None:
    if K < 2:
        raise UsageError(f"UnitMem needs at least 2 training images, got {K}")


def activation_means(model: IARModel, images_Kx3xHxW: torch.Tensor, labels_K: torch.Tensor,
                     image_ids: np.ndarray, cfg: UnitMemConfig, progress: bool = True,
                     checkpoint: Path | None = None, token_cache: Path | None = None) -> dict[str, np.ndarray]:
    """mu per unit layer: K x S x U (S scales; 1 for raster and masked models). With `checkpoint` (a
    directory), the running sums are saved atomically after every batch and an interrupted pass resumes
    from the last finished batch when the images and config are the same. With `token_cache` (a directory),
    the augmented tokens are read from there when a pass with the same tokenizer, augmentations and images
    saved them (nothing is augmented or tokenized), else computed and saved there at the end of the pass;
    mu is the same either way, bit for bit."""
    K = len(images_Kx3xHxW)
    check_image_count(K)
    model.eval()
    stats = UnitStats(model, K)
    fingerprint = _fingerprint(model, cfg, image_ids)
    first = _resume(stats, checkpoint, fingerprint) if checkpoint else 0
    tokens = AugmentedTokens(model, images_Kx3xHxW, image_ids, cfg.augment)
    cached = tokens.load(token_cache) if token_cache is not None else False
    A = cfg.augment.n_aug
    starts = range(first, K, cfg.batch_size)
    bar = tqdm(total=len(starts) * A, desc="UnitMem", unit="pass", disable=not progress)
    with torch.no_grad(), capture(model, on_activation=stats, keep=False):
        for start in starts:
            idx = torch.arange(start, min(start + cfg.batch_size, K))
            stats.index = idx
            tokens_BxAxL = tokens.get(start, int(idx[-1]) + 1)
            for a in range(A):
                model.teacher_forced_logits(tokens_BxAxL[:, a].contiguous(), labels_K[idx])
                bar.update(1)
            if checkpoint:
                _save(stats, checkpoint, fingerprint, int(idx[-1]) + 1)
    bar.close()
    if token_cache is not None and not cached:
        tokens.save(token_cache)
    return {name: (s / A).numpy() for name, s in stats.sums.items()}


def _fingerprint(model: IARModel, cfg: UnitMemConfig, image_ids: np.ndarray) -> dict:
    return normalize_json({"arch": model.arch, "seq_len": model.seq_len, "config": asdict(cfg),
                           "image_ids": [str(i) for i in image_ids]})


STATE = "unitmem_state.npz"  # the running sums and their progress, in one file: saved all or nothing


def _save(stats: UnitStats, directory: Path, fingerprint: dict, next_start: int) -> None:
    progress = to_json({**fingerprint, "layers": list(stats.sums), "next_start": next_start})
    save_npz(directory / STATE, progress=np.array(progress),
             **{f"sums_{i}": s.numpy() for i, s in enumerate(stats.sums.values())})


def resume_point(model: IARModel, cfg: UnitMemConfig, image_ids: np.ndarray, directory: Path) -> int:
    """The first image an interrupted pass saved in `directory` still has to do (0: start over), read
    without changing anything: a damaged state file fails here, before a caller writes."""
    return _resume(UnitStats(model, len(image_ids)), directory, _fingerprint(model, cfg, image_ids))


def _resume(stats: UnitStats, directory: Path, fingerprint: dict) -> int:
    """Load saved sums into `stats`; -> the first image still to do (0 when nothing matches). A damaged
    state file is a UsageError naming it."""
    path = directory / STATE
    if not path.is_file():
        return 0
    state = read_npz(path, what="UnitMem state")
    try:
        saved = json.loads(str(state["progress"]))
        if {k: saved.get(k) for k in fingerprint} != fingerprint:
            return 0
        sums = {name: state[f"sums_{i}"] for i, name in enumerate(saved["layers"])}
        next_start = saved["next_start"]
    except KeyError as e:
        raise UsageError(f"damaged UnitMem state {path}: no {e}") from None
    except (TypeError, AttributeError, ValueError) as e:  # JSONDecodeError is a ValueError
        raise UsageError(f"damaged UnitMem state {path}: {error_reason(e)}") from None
    K = stats.n_images
    bad = [n for n, s in sums.items() if s.ndim != 3 or len(s) != K or s.dtype != np.float64]
    if bad or not isinstance(next_start, int) or not 0 <= next_start <= K:
        problem = (f"sums of {bad[0]} are not float64 {K} x S x U" if bad
                   else f"next_start {next_start!r} not in [0, {K}]")
        raise UsageError(f"damaged UnitMem state {path}: {problem}")
    for name, s in sums.items():
        stats.sums[name] = torch.from_numpy(s)
    return next_start


def unitmem_scores(mu_KxU: np.ndarray, rest: str = "mean") -> tuple[np.ndarray, ...]:
    """(score_U, kstar_U, mu_max_U, mu_rest_U) for one scale of one layer."""
    K, U = mu_KxU.shape
    kstar_U = mu_KxU.argmax(axis=0)
    mu_max_U = mu_KxU[kstar_U, np.arange(U)]
    if rest == "mean":
        mu_rest_U = (mu_KxU.sum(axis=0) - mu_max_U) / (K - 1)
    else:
        others = mu_KxU.astype(np.float64, copy=True)
        others[kstar_U, np.arange(U)] = np.nan
        mu_rest_U = np.nanmedian(others, axis=0)
    denom_U = mu_max_U + mu_rest_U
    score_U = np.divide(mu_max_U - mu_rest_U, denom_U, out=np.zeros(U), where=denom_U > 0)
    return score_U, kstar_U, mu_max_U, mu_rest_U


def unitmem_table(mus: dict[str, np.ndarray], blocks: dict[str, int], image_ids: np.ndarray,
                  rest: str = "mean") -> pd.DataFrame:
    """Tidy table, one row per (layer, unit, scale): layer, block, unit, scale, score, k_star (row of the
    training set), image_id, mu_max, mu_rest."""
    frames = []
    for name, mu_KxSxU in mus.items():
        K, S, U = mu_KxSxU.shape
        for s in range(S):
            score, kstar, mu_max, mu_rest = unitmem_scores(mu_KxSxU[:, s, :], rest)
            frames.append(pd.DataFrame({
                "layer": name, "block": blocks[name], "unit": np.arange(U), "scale": s, "score": score,
                "k_star": kstar, "image_id": np.asarray(image_ids)[kstar], "mu_max": mu_max, "mu_rest": mu_rest}))
    return pd.concat(frames, ignore_index=True)


def unit_scores(table: pd.DataFrame) -> pd.DataFrame:
    """One row per unit: its highest score over scales (an edit acts on a unit at every scale), with the
    scale and k* where that maximum is reached."""
    best = table.loc[table.groupby(["layer", "unit"], sort=False)["score"].idxmax()]
    return best[["layer", "block", "unit", "scale", "score", "k_star", "image_id"]].reset_index(drop=True)


def top_count(n_units: int, pct: float) -> int:
    """How many of n_units make up "the top pct%": rounded to nearest (halves to even, Python's round),
    at least one."""
    return max(1, int(round(n_units * pct / 100.0)))


def top_mask(scores: pd.Series, pct: float) -> np.ndarray:
    """Boolean mask of the top pct% of entries (top_count of them), ties broken by position."""
    order = np.argsort(-scores.to_numpy(), kind="stable")
    mask = np.zeros(len(scores), dtype=bool)
    mask[order[:top_count(len(scores), pct)]] = True
    return mask


def aggregate(table: pd.DataFrame, top_pct: float = 10.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per_block, per_scale_block): mean score, number of units, and share of the global top-k% that
    falls in each group (units ranked by `unit_scores` for blocks; (unit, scale) rows for scale x block)."""
    units = unit_scores(table)
    units = units.assign(top=top_mask(units["score"], top_pct))
    per_block = units.groupby("block").agg(mean_score=("score", "mean"), n_units=("unit", "size"),
                                           n_top=("top", "sum")).reset_index()
    per_block["top_share"] = per_block["n_top"] / max(1, int(units["top"].sum()))
    rows = table.assign(top=top_mask(table["score"], top_pct))
    per_sb = rows.groupby(["scale", "block"]).agg(mean_score=("score", "mean"), n_units=("unit", "size"),
                                                 n_top=("top", "sum")).reset_index()
    per_sb["top_share"] = per_sb["n_top"] / max(1, int(rows["top"].sum()))
    return per_block, per_sb


def compute_unitmem(model: IARModel, images_Kx3xHxW: torch.Tensor, labels_K: torch.Tensor,
                    image_ids: np.ndarray, cfg: UnitMemConfig = UnitMemConfig(),
                    progress: bool = True, checkpoint: Path | None = None,
                    token_cache: Path | None = None) -> pd.DataFrame:
    """The whole pipeline: activation means -> tidy score table (resumable through `checkpoint`; augmented
    tokens kept in `token_cache` for later passes, see `activation_means`)."""
    mus = activation_means(model, images_Kx3xHxW, labels_K, np.asarray(image_ids), cfg, progress, checkpoint,
                           token_cache)
    blocks = {name: spec.block for name, spec in model.units().items()}
    return unitmem_table(mus, blocks, image_ids, cfg.rest)
