"""Training stages of an IAR run: the model checkpoints that `memlab iar train` keeps at log-spaced epochs
(and at the epoch the targets are first memorized), and which one a command loads (`--checkpoint EPOCH`,
`--stage memorized|final`). No torch import: the commands resolve a stage before loading anything.

Layout, beside the final weights in RUN/model:
  RUN/checkpoints/epoch-NNNN/model/    save_pretrained (safetensors) of the model after epoch NNNN
  RUN/checkpoints/epoch-NNNN/...       what localize / extract / ablate write when run at that stage

The final stage is RUN itself, so commands run without a stage write where they always did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from memlab.errors import UsageError
from memlab.io import read_json

CHECKPOINTS = "checkpoints"
STAGE_NAMES = ("memorized", "final")


def checkpoint_epochs(epochs: int) -> list[int]:
    """Log-spaced epochs before the last (steps of sqrt 2: 1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, ...)."""
    out, k = [], 0
    while (e := round(2 ** (k / 2))) < epochs:
        if e not in out:
            out.append(e)
        k += 1
    return out


def first_reaching(accuracies: Sequence[float], acc: float) -> int | None:
    """The first epoch (1-based) whose accuracy reaches `acc`; None if none does."""
    return next((i + 1 for i, a in enumerate(accuracies) if a >= acc), None)


def checkpoint_dir(run: Path, epoch: int) -> Path:
    return Path(run) / CHECKPOINTS / f"epoch-{epoch:04d}"


def saved_epochs(run: Path) -> list[int]:
    root = Path(run) / CHECKPOINTS
    found = []
    for d in root.glob("epoch-*") if root.is_dir() else []:
        tail = d.name.removeprefix("epoch-")
        if tail.isdigit() and (d / "model" / "config.json").is_file():
            found.append(int(tail))
    return sorted(found)


@dataclass(frozen=True)
class Stage:
    """One stage of a run: which weights, where a command's outputs go, and where training was then."""

    epoch: int
    name: str  # "final", "memorized" or "epoch"
    model_dir: Path
    work_dir: Path  # RUN for the final stage, else RUN/checkpoints/epoch-NNNN
    train_acc: float | None
    heldout_nll: float | None
    target_acc: float | None
    log_v: float  # NLL of a uniform guess over the codebook, nats per token

    def columns(self) -> dict:
        """What a result table carries about the stage."""
        return {"stage": self.name, "stage_epoch": self.epoch, "stage_train_acc": self.train_acc,
                "stage_heldout_nll": self.heldout_nll, "stage_target_acc": self.target_acc,
                "uniform_nll": self.log_v}


def _history(run: Path) -> tuple[list[dict], dict]:
    """(per-epoch model rows, metrics.json or {} if the run has not finished)."""
    metrics = read_json(run / "metrics.json") if (run / "metrics.json").is_file() else {}
    if isinstance(metrics, dict) and "final" in metrics:
        rows = metrics.get("model", [])
    else:
        hist = run / "state" / "history.json"
        rows, metrics = (read_json(hist).get("model", []) if hist.is_file() else []), {}
    if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("epoch"), int) for r in rows):
        raise UsageError(f"damaged training history in {run}: expected per-epoch rows with an integer 'epoch'")
    return rows, metrics


def resolve_stage(run: str | Path, codebook_size: int, checkpoint: int | None = None,
                  stage: str | None = None) -> Stage:
    """The stage a command loads: `checkpoint` (an epoch with saved weights), `stage` (memorized | final),
    or the final weights when neither is given. Unknown epochs and stages are one-line UsageErrors."""
    run = Path(run)
    if checkpoint is not None and stage is not None:
        raise UsageError("give --checkpoint EPOCH or --stage NAME, not both")
    if stage is not None and stage not in STAGE_NAMES:
        raise UsageError(f"unknown --stage {stage!r}; allowed: {', '.join(STAGE_NAMES)}")
    rows, metrics = _history(run)
    by_epoch = {r["epoch"]: r for r in rows}
    final = rows[-1]["epoch"] if metrics and rows else None
    saved = saved_epochs(run)
    name = "epoch"
    if stage == "memorized":
        epoch = metrics.get("memorized_epoch") if metrics else None
        if epoch is None:
            best = max((r.get("target_acc", 0.0) for r in rows), default=0.0)
            raise UsageError(f"{run} has no memorized stage: no epoch reached the target accuracy "
                             f"{metrics.get('memorized_acc', 'of the run') if metrics else '(the run has not finished)'}"
                             f" (best {best:.3f}); use --checkpoint EPOCH ({_listing(saved, final)})")
        name = "memorized"
    elif stage == "final" or checkpoint is None:
        if final is None:
            raise UsageError(f"{run} has not finished training; finish it with `memlab iar train --out {run} --resume`"
                             f" or load a saved epoch with --checkpoint ({_listing(saved, None)})")
        epoch, name = final, "final"
    else:
        epoch = checkpoint
        if epoch != final and epoch not in saved:
            raise UsageError(f"no checkpoint of epoch {epoch} in {run}; saved: {_listing(saved, final)}")
    if epoch == final:
        model_dir, work_dir = run / "model", run
        name = name if name != "epoch" else "final"
    else:
        work_dir = checkpoint_dir(run, epoch)
        model_dir = work_dir / "model"
    row = by_epoch.get(epoch, {})
    return Stage(epoch, name, model_dir, work_dir, row.get("train_acc"), row.get("heldout_nll"),
                 row.get("target_acc"), math.log(codebook_size))


def _listing(saved: list[int], final: int | None) -> str:
    epochs = sorted(set(saved) | ({final} if final is not None else set()))
    return ", ".join(map(str, epochs)) if epochs else "none"
