"""Mitigations side by side on the yardstick (`memlab iar mitigations BASE --method NAME=RUN ...`).

Every mitigation is a run (unlearned, retrained with MemSinks, pruned, deduplicated, reweighted, merged). It
is scored exactly like a unit edit of the base run: the base run's evaluation sets T and C, its extraction
threshold and prefix, the same sample labels and seeds, the same quality measures (the yardstick's
`Baseline`, rebuilt from the config of a finished yardstick of BASE, whose random-edit cloud and unit edits
come along). Costs are increases over the unedited base model, so a mitigation's verdict at matched cost is
read against the same random cloud as every unit edit's:

  mitigations.csv / .parquet   one row per method: the unedited base, the unit edits, every mitigation run
  verdicts.csv, curves.csv, pareto.png   as in a yardstick directory, mitigations and edits together
  state/rows.json              finished mitigation rows (resume); metrics.json last

A run can only be scored on the base run's numbers if its tokenizer gives the base run's tokens (retrained
runs: `memlab iar train --tokenizer-from BASE`); one that does not is refused before anything is written.
"""

from __future__ import annotations

import hashlib
from dataclasses import fields
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from tqdm.auto import tqdm

from memlab.errors import UsageError
from memlab.iar.batching import tokenize_all
from memlab.iar.compare import verdicts_and_figure
from memlab.iar.config import ExtractConfig, YardstickConfig
from memlab.iar.evalsets import EvalSets
from memlab.iar.yardstick import make_baseline, score_model
from memlab.io import normalize_json, read_json, read_parquet, write_json, write_parquet, write_text
from memlab.rundir import RunDir

COMPUTE_KEYS = ("seconds", "steps", "stopped_epoch")  # what a mitigation's metrics.json may say it cost


def read_yardstick(path: Path) -> tuple[pd.DataFrame, YardstickConfig, ExtractConfig, EvalSets]:
    """A finished yardstick of the base run (`memlab iar ablate BASE --localizer NAME` or `iar localizers`):
    its rows (the random cloud and the unit edits), and the configs and sets it was scored with."""
    rd = RunDir(Path(path), "iar-yardstick")
    if not rd.is_done() or not (rd.path / "yardstick.parquet").is_file():
        raise UsageError(f"--edits {path}: not a finished yardstick (no metrics.json / yardstick.parquet); run "
                         "`memlab iar ablate BASE --localizer unitmem` first: its random-edit cloud is the control")
    cfg = rd.saved_config()
    if not all(isinstance(cfg.get(k), dict) for k in ("yardstick", "extract", "sets")):
        raise UsageError(f"--edits {path}: its config.json lacks the yardstick, extract or sets table")
    names = {f.name for f in fields(YardstickConfig)}
    ycfg = YardstickConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg["yardstick"].items()
                              if k in names})
    ecfg = ExtractConfig(**cfg["extract"])
    table = read_parquet(rd.path / "yardstick.parquet", what="yardstick table")
    return table, ycfg, ecfg, EvalSets.from_json(cfg["sets"], f"{rd.config_file} sets")


def _digest(run: Path) -> str:
    return hashlib.sha1((run / "metrics.json").read_bytes()).hexdigest()[:12]


def check_same_tokens(model, base_tokens_NxL: torch.Tensor, images, name: str, batch_size: int) -> None:
    """Refuse a run whose tokenizer gives other tokens than the base run's on the base training images."""
    tokens = tokenize_all(model, images, batch_size)
    if tokens.shape != base_tokens_NxL.shape or not torch.equal(tokens, base_tokens_NxL):
        raise UsageError(f"--method {name}: its tokenizer gives other tokens than the base run's, so the yardstick "
                         "cannot score it on the same numbers; retrain it with --tokenizer-from BASE")


def compute_of(run: Path) -> dict:
    """What producing the run cost, as its metrics.json says: seconds and steps (unlearning), and for a
    trained run the epochs of its model stage (a retraining's budget; seconds are not recorded there)."""
    metrics = read_json(run / "metrics.json")
    out = {f"compute_{k}": metrics[k] for k in COMPUTE_KEYS if isinstance(metrics.get(k), (int, float))}
    epoch = ((metrics.get("final") or {}).get("model") or {}).get("epoch") if isinstance(metrics.get("final"), dict) else None
    if isinstance(epoch, int) and "compute_steps" not in out:  # an unlearned run keeps its base's epochs
        out["compute_epochs"] = epoch
    return out


def score_mitigations(base_model, data, edits: Path, runs: dict[str, tuple[Path, object]], out: RunDir,
                      classifier: Callable[[], object] | None = None, progress: bool = True,
                      show: Callable[[str, pd.DataFrame], None] | None = None) -> dict:
    """Score every mitigation run ({name: (run dir, loaded model)}) against the base run's yardstick in
    `edits`; -> metrics.json's content. Models are loaded (and their tokens checked) by the caller."""
    table, ycfg, ecfg, sets = read_yardstick(edits)
    # rows are kept per run (its path and metrics.json digest), so adding a method later reuses the others
    config = normalize_json({"edits": str(Path(edits).resolve()), "yardstick": {k: v for k, v in vars(ycfg).items()
                                                                              if k not in ycfg.SPEED_ONLY}})
    ident = {n: [str(p.resolve()), _digest(p)] for n, (p, _) in runs.items()}
    clf = classifier() if classifier is not None else None
    base = make_baseline(base_model, data, sets, ecfg, ycfg.n_samples, ycfg.pca_dim, ycfg.seed, clf)
    edits_base = read_json(Path(edits) / "metrics.json").get("baseline", {})
    rows_file = out.state / "rows.json"
    saved = read_json(rows_file) if rows_file.is_file() else None
    done = dict(saved["rows"]) if isinstance(saved, dict) and saved.get("config") == config else {}
    done = {n: r for n, r in done.items() if n in ident and isinstance(r, dict) and r.get("run_id") == ident[n]}
    out.start(config)
    bar = tqdm(total=len(runs), initial=sum(n in done for n in runs), desc="mitigations", unit="run",
               disable=not progress)
    for name, (path, model) in runs.items():
        if name in done:
            continue
        row = score_model(model, base_model, base, clf, describe={"method": name, "condition": name, "run": str(path)})
        done[name] = {**row, **compute_of(path), "run_id": ident[name]}
        write_json(rows_file, {"config": config, "rows": done})
        bar.update(1)
    bar.close()
    mitigations = pd.DataFrame([{k: v for k, v in done[n].items() if k != "run_id"} for n in runs]).assign(kind="mitigation")
    edits_rows = table.assign(kind=["random edit" if m == "random" else "unit edit" for m in table["method"]])
    unedited = pd.DataFrame([{**base.metrics, "method": "unedited", "condition": "unedited", "kind": "unedited"}])
    combined = pd.concat([edits_rows, mitigations], ignore_index=True)
    summary = verdicts_and_figure(combined, base, ycfg, out)
    board = pd.concat([unedited, edits_rows[edits_rows["kind"] == "unit edit"], mitigations], ignore_index=True)
    write_parquet(out.path / "mitigations.parquet", board)
    write_text(out.path / "mitigations.csv", board.to_csv(index=False))
    same = {k: (edits_base.get(k), base.metrics.get(k)) for k in ("T_extracted", "C_extracted")}
    metrics = {"edits": str(edits), "sets": sets.to_json(), "baseline": base.metrics,
               "baseline_matches_edits": all(a == b for a, b in same.values()),
               "methods": list(runs), **summary}
    out.finish(metrics)
    if show:
        cols = [c for c in ("method", "kind", "T_extracted", "C_extracted", "specificity", "cost_heldout_nll",
                            "cost_sample_nll", "cost_fd", "cost_class_consistency", "compute_seconds")
                if c in board.columns]
        show(f"mitigations against the unedited base (T = {len(sets.target_ids)}, C = {len(sets.control_ids)})",
             board[cols])
    return metrics
