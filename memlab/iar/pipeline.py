"""localize -> extract -> ablate on a model and its data, writing tables, figures and metrics.json into
an output directory (the commands use RUN/localize, RUN/extract, RUN/ablate). Works on any IARModel:
the commands load a run directory with `load_run`, tests and the notebook pass a fake model.

Planted duplicates (training rows whose id is `<id>#copy<r>`) are folded into their original: every
training image counts once, and its number of copies is kept to check that extraction finds them first.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from memlab.errors import UsageError
from memlab.iar import report
from memlab.iar.ablate import AblateConfig, AblationData, config_dict, run_ablation, summarize
from memlab.iar.batching import tokenize_all
from memlab.iar.extract import ExtractConfig, attack_prefix, extract
from memlab.iar.interface import IARModel
from memlab.iar.quality import QualityConfig
from memlab.iar.unitmem import (UnitMemConfig, aggregate, check_image_count, compute_unitmem, resume_point,
                                top_count, unit_scores)
from memlab.io import normalize_json, read_json, read_parquet, save_npy, write_json, write_parquet, write_text
from memlab.rundir import RunDir


@dataclass
class RunData:
    """Unique training images with their copy counts, and held-out images; pixels in [0, 1]."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    train_ids: np.ndarray  # str
    copies: np.ndarray  # how many times each image appears in the training set
    heldout_images: torch.Tensor
    heldout_labels: torch.Tensor
    captions: np.ndarray | None = None  # str per training image, when labels are caption ids (captioned sets)

    @property
    def duplicated_ids(self) -> set:
        return set(self.train_ids[self.copies > 1].tolist())


def fold_duplicates(train_images, train_labels, heldout_images, heldout_labels, ids) -> RunData:
    base = np.array([str(i).split("#copy")[0] for i in ids])
    uniq, first, counts = np.unique(base, return_index=True, return_counts=True)
    order = np.argsort(first)
    rows = torch.as_tensor(first[order])
    return RunData(train_images[rows], train_labels[rows], uniq[order], counts[order], heldout_images, heldout_labels)


def _rundir(out: Path | RunDir, kind: str) -> RunDir:
    return out if isinstance(out, RunDir) else RunDir(Path(out), kind)


Show = Callable[[str, pd.DataFrame], None] | None  # where a command shows a table; the library prints nothing


def localize(model: IARModel, data: RunData, cfg: UnitMemConfig, out: Path | RunDir, progress: bool = True,
             show: Show = None, token_cache: Path | None = None) -> dict:
    """UnitMem into `out`; `token_cache`: a directory keeping the augmented tokens for later passes over the
    same run (memlab.iar.token_cache; the commands use RUN/cache, shared by every checkpoint)."""
    rd = _rundir(out, "iar-localize")
    out = rd.path
    check_image_count(len(data.train_ids))  # bad input and damaged running sums fail before anything is written
    resume_point(model, cfg, data.train_ids, rd.state)
    rd.start({"unitmem": asdict(cfg)})
    t0 = time.perf_counter()
    # state/ keeps the running sums, so an interrupted UnitMem pass resumes where it stopped
    table = compute_unitmem(model, data.train_images, data.train_labels, data.train_ids, cfg, progress,
                            checkpoint=rd.state, token_cache=token_cache)
    per_block, per_sb = aggregate(table, cfg.top_pct)
    write_parquet(out / "unitmem.parquet", table, index=True)
    shutil.rmtree(rd.state, ignore_errors=True)  # the pass is done: its running sums are in the table
    write_text(out / "per_block.csv", per_block.to_csv(index=False))
    write_text(out / "per_scale_block.csv", per_sb.to_csv(index=False))
    report.plot_unitmem(per_block, per_sb, out / "unitmem.png", f"UnitMem ({model.arch})")
    units = unit_scores(table)
    top = units.nlargest(top_count(len(units), cfg.top_pct), "score")
    dup = data.duplicated_ids
    metrics = {
        "arch": model.arch, "n_images": len(data.train_ids), "n_units": len(units), "n_rows": len(table),
        "mean_score": float(units["score"].mean()), "top_pct": cfg.top_pct,
        "top_mean_score": float(top["score"].mean()),
        "top_kstar_duplicated_share": float(top["image_id"].isin(dup).mean()) if dup else None,
        "duplicated_share_of_images": len(dup) / len(data.train_ids),
        "per_block": per_block.to_dict(orient="list"), "per_scale_block": per_sb.to_dict(orient="list"),
        "seconds": time.perf_counter() - t0}  # of this pass (a resumed pass counts only its own part)
    rd.finish(metrics)
    if show:
        show(f"UnitMem per block ({model.arch})", per_block)
    return metrics


def _auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """P(score of a positive > score of a negative), ties counting half (Mann-Whitney)."""
    pos, neg = scores[positive], scores[~positive]
    if not len(pos) or not len(neg):
        return None
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def extraction(model: IARModel, data: RunData, cfg: ExtractConfig, out: Path | RunDir, show: Show = None) -> dict:
    rd = _rundir(out, "iar-extract")
    out = rd.path
    attack_prefix(model, cfg.prefix)  # a prefix the model cannot take fails before anything is written
    rd.start({"extract": asdict(cfg)})
    tr = tokenize_all(model, data.train_images, cfg.batch_size)
    ho = tokenize_all(model, data.heldout_images, cfg.batch_size)
    res = extract(model, tr, data.train_labels, data.train_ids, ho, data.heldout_labels, cfg)
    is_dup_N = data.copies > 1
    rank_N = np.empty(len(is_dup_N))
    rank_N[res.order] = np.arange(len(is_dup_N))
    rows = res.table["index"].to_numpy()
    table = res.table.assign(copies=data.copies[rows])
    if data.captions is not None:
        table = table.assign(caption=data.captions[rows])
    write_text(out / "candidates.csv", table.to_csv(index=False))
    write_text(out / "prefixes.csv", _prefixes(model, tr, table, res.prefix).to_csv(index=False))
    save_npy(out / "heldout_sim.npy", res.heldout_sim)
    report.plot_extraction(table, res.heldout_sim, res.threshold, out / "extraction.png", data.duplicated_ids)
    s = res.summary()
    s.update({
        "arch": model.arch, "fpr": cfg.fpr, "nn_ratio": cfg.nn_ratio, "n_images": len(data.train_ids),
        "n_duplicated": int(is_dup_N.sum()),
        "duplicated_in_candidates": int((table["copies"] > 1).sum()),
        "duplicated_extracted": int(((table["copies"] > 1) & table["extracted"]).sum()),
        "duplicated_rank_auc": _auc(-rank_N, is_dup_N),  # 1.0: every duplicate outranks every other image
        "duplicated_mean_rank": float(rank_N[is_dup_N].mean()) if is_dup_N.any() else None,
        "train_tf_acc_mean": float(res.train_acc.mean())})
    rd.finish(s)
    if show:
        show(f"extraction ({model.arch}): {s['n_extracted']}/{s['n_candidates']} extracted",
             table.head(10)[["rank", "image_id", "copies", "tf_acc", "token_match", "pixel_sim", "extracted"]])
    return s


def _prefixes(model: IARModel, tokens_NxL: torch.Tensor, table: pd.DataFrame, prefix: int) -> pd.DataFrame:
    """What the attack gave each candidate: the revealed positions and their tokens (space-separated)."""
    pos = model.revealed_mask(prefix).cpu().nonzero().flatten()
    given = tokens_NxL[torch.tensor(table["index"].to_numpy())][:, pos].cpu()
    keep = [c for c in ("rank", "image_id", "caption") if c in table.columns]
    return table[keep].assign(positions=" ".join(map(str, pos.tolist())),
                              tokens=[" ".join(map(str, row)) for row in given.tolist()])


def load_units(model: IARModel, data: RunData, localize_dir: Path, progress: bool = True,
               show: Show = None, token_cache: Path | None = None) -> pd.DataFrame:
    """UnitMem per unit from a finished localize_dir (an `iar-localize` result); computed there with the
    default config when it is missing or unfinished."""
    rd, mode = RunDir.open(localize_dir, "iar-localize", flag="localize directory", continue_same=True)
    path = rd.path / "unitmem.parquet"
    if mode != "done" or not path.is_file():
        localize(model, data, UnitMemConfig(), rd, progress, show, token_cache)
    table = read_parquet(path, what="UnitMem table")
    missing = sorted({"layer", "block", "unit", "scale", "score", "k_star", "image_id"} - set(table.columns))
    if missing:
        raise UsageError(f"damaged UnitMem table {path}: no column {missing[0]!r}")
    return unit_scores(table)


def units_digest(units: pd.DataFrame) -> str:
    """A fingerprint of a unit table: finished ablation rows are reused only for the same units."""
    return hashlib.sha1(pd.util.hash_pandas_object(units, index=False).to_numpy().tobytes()).hexdigest()[:16]


def ablation(model: IARModel, data: RunData, units: pd.DataFrame, cfg: AblateConfig, ext_cfg: ExtractConfig,
             q_cfg: QualityConfig, out: Path | RunDir, progress: bool = True, show: Show = None) -> dict:
    """Resumable: rows of finished conditions live in out/state/rows.json, reused when the config matches."""
    rd = _rundir(out, "iar-ablate")
    out = rd.path
    attack_prefix(model, ext_cfg.prefix)
    config = {"ablate": config_dict(cfg), "extract": asdict(ext_cfg), "quality": asdict(q_cfg),
              "units": units_digest(units)}
    rows_file = rd.state / "rows.json"
    saved = read_json(rows_file) if rows_file.is_file() else None
    # the rows carry the config they were computed under: a run killed before its first row of a new config
    # leaves the old rows behind, and they must not count for the new one
    done = dict(saved["rows"]) if isinstance(saved, dict) and saved.get("config") == normalize_json(config) \
        and isinstance(saved.get("rows"), dict) else {}
    rd.start(config)

    def save(row: dict) -> None:
        done[row["key"]] = row
        write_json(rows_file, {"config": config, "rows": done})

    abl = AblationData(tokenize_all(model, data.train_images), data.train_labels, data.train_ids,
                       tokenize_all(model, data.heldout_images), data.heldout_labels, data.heldout_images)
    df = run_ablation(model, units, abl, cfg, ext_cfg, q_cfg, done=done, on_row=save, progress=progress)
    write_text(out / "ablation.csv", df.drop(columns=["candidates"], errors="ignore").to_csv(index=False))
    report.plot_ablation(df, out / "ablation.png", cfg.factor)
    report.plot_block_ablation(df, out / "blocks.png")
    s = summarize(df, cfg.top_pct)
    s.update({"arch": model.arch, "top_pct": cfg.top_pct, "factor": cfg.factor, "n_candidates": ext_cfg.n_candidates})
    rd.finish(s)
    if show:
        head = df[np.isclose(df["pct"], cfg.top_pct) | (df["condition"] == "baseline")]
        show(f"ablation ({model.arch}), k = {cfg.top_pct:g}%, factor {cfg.factor:g}",
             head[["condition", "pct", "draw", "block", "n_edited", "n_extracted", "nll", "fd"]])
    return s
