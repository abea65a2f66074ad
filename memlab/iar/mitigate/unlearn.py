"""Unlearning the targets of a trained IAR run (`memlab iar unlearn RUN --method NAME --out DIR`): fine-tune a
copy of the run's model with one of the losses of `unlearn_losses`, score it on the yardstick every
`eval_every` steps (a trajectory, not one point), stop once no target is extractable or at the step budget,
and write a new run that loads like a trained one.

Forget set: the yardstick's targets T (RUN/evalsets.json). Retain set: a seeded draw of `retain_size` training
images outside T. The held-out images stay untouched for evaluation. Every point is scored with
`yardstick.score_model` against the ORIGINAL model's `Baseline` (its threshold, sets, samples' seeds), so the
numbers are those of any other intervention on the same run.

The new run (kind iar-unlearn):
  config.json        {"kind", "data", "train" (the base run's), "derived": how it was made}
  tokenizer/         the base run's tokenizer, copied byte for byte
  model/             the unlearned weights (save_pretrained, safetensors)
  evalsets.json      the base stage's evaluation sets; classifier/ the base run's, when it has one
  trajectory.csv / .parquet, trajectory.png    one row per point (step 0 is the original model)
  metrics.json       written last: the final point on the full yardstick, the stopping reason, compute
  state/             while unfinished: trajectory.json and the weights + Adam state of the last point

Shape letters: N training images, T targets, R retain sequences, L tokens, P scored positions, V vocabulary.
"""

from __future__ import annotations

import copy
import os
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model
from tqdm.auto import tqdm

from memlab.errors import UsageError
from memlab.iar.batching import continue_all, teacher_forced_scores
from memlab.iar.interface import IARModel
from memlab.iar.localizers.common import log_probs
from memlab.iar.mitigate import unlearn_losses
from memlab.iar.mitigate.unlearn_config import UnlearnConfig
from memlab.iar.yardstick import Baseline, make_baseline, score_model
from memlab.io import error_reason, new_figure, read_json, save_figure, write_json, write_parquet, write_text
from memlab.rundir import RunDir

STOPPED = ("all targets unextractable", "step budget")


@dataclass
class Inputs:
    """What every step reads: the targets with the original model's log-likelihoods and memorized positions,
    and the retain set in fixed batches with the original model's log-probabilities."""

    forget_tokens_TxL: torch.Tensor
    forget_labels_T: torch.Tensor
    forget_ref_ll_TxP: torch.Tensor
    memorized_TxP: torch.Tensor
    retain_rows: np.ndarray
    retain_batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # (tokens RxL, labels R, ref logp RxPxV)


def true_ll(logp_BxPxV: torch.Tensor, true_BxP: torch.Tensor) -> torch.Tensor:
    return torch.gather(logp_BxPxV, 2, true_BxP[..., None])[..., 0]


def memorized_positions(reference: IARModel, tokens_TxL: torch.Tensor, labels_T: torch.Tensor, prefix: int
                        ) -> torch.Tensor:
    """Bool T x P over the scored positions: after the prefix, where the original model's greedy continuation
    from `prefix` reproduces the true token."""
    gen_TxL = continue_all(reference, tokens_TxL, labels_T, prefix)
    after_L = ~reference.revealed_mask(prefix).to(gen_TxL.device)
    return ((gen_TxL == tokens_TxL) & after_L)[:, reference.scored_positions().to(gen_TxL.device)]


def retain_draw(n_rows: int, target_rows: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted rows of a seeded draw of `size` training rows outside the targets (size 0: all of them)."""
    others = np.setdiff1d(np.arange(n_rows), target_rows)
    if size == 0 or size >= len(others):
        return others
    return np.sort(np.random.default_rng(seed).choice(others, size, replace=False))


def check_retain(n_rows: int, n_targets: int, cfg: UnlearnConfig) -> None:
    """Bad retain settings as one line, before anything is written."""
    n_other = n_rows - n_targets
    if cfg.retain_size > n_other:
        raise UsageError(f"--retain-size must be <= {n_other}, the training images outside the {n_targets} "
                         f"targets (0: all of them), got {cfg.retain_size}")
    if unlearn_losses.REGISTRY[cfg.method].uses_retain and n_other == 0:
        raise UsageError(f"--method {cfg.method} needs a retain set, and every training image is a target")


@torch.no_grad()
def prepare(reference: IARModel, train_tokens_NxL: torch.Tensor, train_labels_N: torch.Tensor,
            target_rows: np.ndarray, prefix: int, cfg: UnlearnConfig) -> Inputs:
    reference.eval()
    rows_T = torch.as_tensor(np.asarray(target_rows, dtype=np.int64))
    tok, lab = train_tokens_NxL[rows_T], train_labels_N[rows_T]
    ref_ll = true_ll(*log_probs(reference, tok, lab))
    retain = retain_draw(len(train_tokens_NxL), target_rows, cfg.retain_size, cfg.seed)
    batches = []
    for s in range(0, len(retain), cfg.retain_batch):
        r = torch.as_tensor(retain[s:s + cfg.retain_batch])
        batches.append((train_tokens_NxL[r], train_labels_N[r], log_probs(reference, train_tokens_NxL[r],
                                                                           train_labels_N[r])[0]))
    return Inputs(tok, lab, ref_ll, memorized_positions(reference, tok, lab, prefix), retain, batches)


def batch_of(model: IARModel, inputs: Inputs, step: int, uses_retain: bool) -> unlearn_losses.Batch:
    """The loss inputs of step `step` (0-based): every target, and retain batch step mod the number of batches."""
    ll = true_ll(*log_probs(model, inputs.forget_tokens_TxL, inputs.forget_labels_T))
    b = unlearn_losses.Batch(ll, inputs.forget_ref_ll_TxP, inputs.memorized_TxP)
    if uses_retain and inputs.retain_batches:
        tok, lab, ref = inputs.retain_batches[step % len(inputs.retain_batches)]
        b.retain_logp_RxPxV, b.retain_true_RxP = log_probs(model, tok, lab)
        b.retain_ref_logp_RxPxV = ref
    return b


def train_step(model: IARModel, opt: torch.optim.Optimizer, inputs: Inputs, step: int, cfg: UnlearnConfig
               ) -> dict[str, float]:
    """One optimiser step of cfg.method; -> its loss terms (before the step)."""
    b = batch_of(model, inputs, step, unlearn_losses.REGISTRY[cfg.method].uses_retain)
    loss, terms = unlearn_losses.loss(cfg.method, b, cfg)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return {**{f"loss_{k}": v for k, v in terms.items()}, "loss": float(loss.detach())}


@torch.no_grad()
def diagnostics(model: IARModel, inputs: Inputs) -> dict[str, float]:
    """Mean log-likelihood (nats per token) of the targets at all / memorized / other scored positions, and
    over the whole retain set its NLL and KL(original || current) (exactly 0 for the original model)."""
    b = batch_of(model, inputs, 0, False)
    mem = inputs.memorized_TxP
    out = {"forget_ll": float(b.forget_ll_TxP.mean()),
           "memorized_ll": float(b.forget_ll_TxP[mem].mean()) if mem.any() else float("nan"),
           "other_ll": float(b.forget_ll_TxP[~mem].mean()) if (~mem).any() else float("nan")}
    nll, kl, n = 0.0, 0.0, 0
    for tok, lab, ref in inputs.retain_batches:
        logp, true = log_probs(model, tok, lab)
        rb = unlearn_losses.Batch(b.forget_ll_TxP, b.forget_ref_ll_TxP, mem, logp, ref, true)
        nll += float(unlearn_losses.retain_nll(rb)) * len(tok)
        kl += float(unlearn_losses.retain_kl(rb)) * len(tok)
        n += len(tok)
    out["retain_nll"], out["retain_kl"] = (nll / n, kl / n) if n else (float("nan"), float("nan"))
    return out


def cheap_baseline(reference: IARModel, base: Baseline, n_samples: int, classifier=None) -> Baseline:
    """`base` with only its first n_samples samples, and the original model's metrics measured on them (so
    the quality costs of a trajectory point compare like with like)."""
    cheap = replace(base, sample_labels_S=base.sample_labels_S[:n_samples], sample_seeds=base.sample_seeds[:n_samples],
                    metrics=None)
    cheap.metrics = score_model(reference, reference, cheap, classifier)
    return cheap


# --- state of an unfinished run: trajectory rows, and the weights + Adam state of the last point ----------

def _save_point(state: Path, step: int, model: IARModel, opt: torch.optim.Optimizer) -> None:
    point = state / f"point-{step:06d}"
    tmp = state / f".point-{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model(model, str(tmp / "weights.safetensors"))
    sd = opt.state_dict()
    save_file({f"{i}.{k}": v.detach().cpu().contiguous() for i, st in sd["state"].items() for k, v in st.items()},
              str(tmp / "optimizer.safetensors"))
    write_json(tmp / "optimizer.json", {"param_groups": sd["param_groups"]})
    shutil.rmtree(point, ignore_errors=True)
    os.replace(tmp, point)
    write_json(state / "latest.json", {"step": step})  # last: names a complete point
    for old in state.glob("point-*"):
        if old != point:
            shutil.rmtree(old, ignore_errors=True)


def _load_point(state: Path, model: IARModel, opt: torch.optim.Optimizer) -> int:
    """Restore the last saved point into `model` and `opt`; -> its step (0: none saved)."""
    latest = state / "latest.json"
    if not latest.is_file():
        return 0
    saved = read_json(latest)
    step = saved.get("step") if isinstance(saved, dict) else None
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise UsageError(f"damaged {latest}: expected {{\"step\": <integer >= 0>}}")
    point = state / f"point-{step:06d}"
    try:
        missing, unexpected = load_model(model, str(point / "weights.safetensors"), strict=False)
        if missing or unexpected:
            raise ValueError(f"weights of another model ({(missing or unexpected)[0]})")
        tensors = load_file(str(point / "optimizer.safetensors"))
        groups = read_json(point / "optimizer.json")["param_groups"]
        moments: dict[int, dict] = {}
        for key, v in tensors.items():
            i, _, name = key.partition(".")
            moments.setdefault(int(i), {})[name] = v
        opt.load_state_dict({"state": moments, "param_groups": groups})
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as e:
        raise UsageError(f"damaged unlearning state {point}: {error_reason(e)}") from None
    return step


def trajectory_figure(table: pd.DataFrame, title: str):
    fig, axes = new_figure((11.5, 3.4), 1, 3)
    step = table["step"]
    axes[0].plot(step, table["T_extracted"], "o-", ms=3, label=f"targets (of {int(table['T_n'].iloc[0])})")
    axes[0].plot(step, table["C_extracted"], "s--", ms=3, mfc="none", label=f"controls (of {int(table['C_n'].iloc[0])})")
    axes[0].set(xlabel="unlearning step", ylabel="images extracted (fixed threshold)")
    axes[0].legend(fontsize=7)
    axes[1].plot(step, table["heldout_nll"], "o-", ms=3)
    axes[1].set(xlabel="unlearning step", ylabel="held-out NLL (nats per token)")
    axes[2].plot(step, table["forget_ll"], "o-", ms=3, label="targets, all positions")
    axes[2].plot(step, table["memorized_ll"], "s--", ms=3, mfc="none", label="targets, memorized positions")
    axes[2].set(xlabel="unlearning step", ylabel="log-likelihood (nats per token)")
    axes[2].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    return fig


def run_unlearning(reference: IARModel, data, sets, ext_cfg, cfg: UnlearnConfig, rd: RunDir, config: dict,
                   copies: dict[str, Path], classifier=None, progress: bool = True, model_dir: str = "model") -> dict:
    """Unlearn into run directory `rd` (resuming its state), -> metrics.json's content. `config`: the new run's
    config.json (the base run's data and train sections, and "derived"); `copies`: name in the new run -> file
    or directory of the base run copied there unchanged (tokenizer/, evalsets.json, classifier/); `model_dir`:
    where the unlearned model's save_pretrained goes (an external model's work directory: transformer/)."""
    from memlab.iar.checkpoint import copy_published, publish
    from memlab.iar.extract import attack_prefix

    if rd.is_done() and rd.same_config(config):
        return rd.finished_metrics()
    reference.eval()
    base = make_baseline(reference, data, sets, ext_cfg, cfg.n_samples, cfg.pca_dim, cfg.seed, classifier)
    cheap = cheap_baseline(reference, base, cfg.trajectory_samples, classifier)
    inputs = prepare(reference, base.train_tokens_NxL, base.train_labels_N, base.rows_T,
                     attack_prefix(reference, ext_cfg.prefix), cfg)
    rd.start(config)
    for name, src in copies.items():
        copy_published(Path(src), rd.path / name)
    model = copy.deepcopy(reference).eval()  # eval: no dropout, every step deterministic
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    traj_file = rd.state / "trajectory.json"
    step = _load_point(rd.state, model, opt)
    saved = read_json(traj_file) if traj_file.is_file() and step > 0 else {"rows": []}
    rows = [r for r in saved.get("rows", []) if r["step"] <= step]  # a row past the saved point is recomputed
    if not rows:
        rows = [{"step": 0, "train_seconds": 0.0, "eval_seconds": 0.0, **cheap.metrics, **diagnostics(model, inputs)}]
    train_seconds = rows[-1]["train_seconds"]
    bar = tqdm(total=cfg.steps, initial=step, desc=f"unlearn {cfg.method}", unit="step", disable=not progress)
    while step < cfg.steps and rows[-1]["T_extracted"] > 0:
        t0 = time.perf_counter()
        end = min(step + cfg.eval_every, cfg.steps)
        for s in range(step, end):
            terms = train_step(model, opt, inputs, s, cfg)
        train_seconds += time.perf_counter() - t0
        bar.update(end - step)
        step = end
        t1 = time.perf_counter()
        row = score_model(model, reference, cheap, classifier, seconds=train_seconds)
        rows.append({"step": step, **terms, "train_seconds": train_seconds, **row, **diagnostics(model, inputs),
                     "eval_seconds": time.perf_counter() - t1})
        write_json(traj_file, {"rows": rows})  # before the point: a row past the point is dropped on resume
        _save_point(rd.state, step, model, opt)
        bar.set_postfix(T=rows[-1]["T_extracted"], C=rows[-1]["C_extracted"])
    bar.close()
    stopped = STOPPED[0] if rows[-1]["T_extracted"] == 0 else STOPPED[1]
    final = score_model(model, reference, base, classifier, seconds=train_seconds)
    publish(model, rd.path / model_dir)
    table = pd.DataFrame(rows).assign(method=cfg.method)
    write_parquet(rd.path / "trajectory.parquet", table)
    write_text(rd.path / "trajectory.csv", table.to_csv(index=False))
    save_figure(trajectory_figure(table, f"unlearning ({cfg.method}) of {reference.arch}: {stopped} after {step} steps"),
                rd.path / "trajectory.png")
    metrics = _metrics(model, inputs, base, final, cfg, step, stopped, train_seconds, rows, config)
    shutil.rmtree(rd.state, ignore_errors=True)
    rd.finish(metrics)
    return metrics


def _metrics(model, inputs: Inputs, base: Baseline, final: dict, cfg, step: int, stopped: str, train_seconds: float,
             rows: list[dict], config: dict) -> dict:
    """metrics.json: what `memlab.iar.stages` reads of a finished run ("model" rows, "final"), and the result."""
    model.eval()
    acc_T, _ = teacher_forced_scores(model, inputs.forget_tokens_TxL, inputs.forget_labels_T,
                                     model.ranking_positions(model.default_prefix()).cpu())
    acc_N, _ = teacher_forced_scores(model, base.train_tokens_NxL, base.train_labels_N, model.scored_positions().cpu())
    epoch = config["derived"]["stage"]["stage_epoch"]  # the base epoch the unlearned weights come from
    row = {"epoch": epoch, "train_acc": float(acc_N.mean()), "heldout_nll": final["heldout_nll"],
           "target_acc": float(acc_T.mean())}
    return {"model": [row], "final": {"tokenizer": {}, "model": row}, "memorized_acc": None, "memorized_epoch": None,
            "checkpoints": [], "seconds": train_seconds, "steps": step,  # the compute, where the scoreboard reads it
            "unlearn": {"method": cfg.method, "steps": step, "stopped": stopped, "train_seconds": train_seconds,
                        "eval_seconds": float(sum(r["eval_seconds"] for r in rows)), "points": len(rows),
                        "threshold": base.threshold, "prefix": base.prefix,
                        "n_memorized_positions": int(inputs.memorized_TxP.sum()),
                        "n_forget_positions": int(inputs.memorized_TxP.numel()), "n_retain": len(inputs.retain_rows),
                        "baseline": base.metrics, "final": final}}


def derived_config(run_config: dict, base_run: Path, stage_columns: dict, cfg: UnlearnConfig, ext_cfg, sets) -> dict:
    """config.json of the new run: the base run's data and train sections (so it loads like a trained run), and
    under "derived" what it was made from and how."""
    return {"data": run_config["data"], "train": run_config["train"],
            "derived": {"from": "unlearn", "base_run": str(Path(base_run).resolve()), "stage": stage_columns,
                        "unlearn": asdict(cfg), "extract": asdict(ext_cfg), "sets": sets.to_json()}}
