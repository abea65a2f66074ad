"""Per-scale breakdown of the localizers: one row per (layer, unit, scale) instead of one per unit, for
next-scale models, where a unit acts at the positions of every scale. The whole-unit tables are unchanged;
`RELATION` says how the per-scale rows of each method relate to the whole-unit score:

- "max" (unitmem, activation, contrast): these score each scale anyway; the whole score is the highest
  per-scale score (localizers.common.unit_table), exactly.
- "sum" (grad-act, integrated-gradients): a gate per (position, unit) instead of one per unit; the gradient
  with respect to the unit's gate is the sum of those of its positions (chain rule, at the same point of
  the integration path), so the per-scale scores add up to the whole score (to rounding).
- "separate" (zero-out, oracle): the NLL increase when the unit is zeroed at that scale's positions only.
  Not additive: a scale's tokens feed every finer scale through attention, so the effects interact.
- "separate" (hard-concrete, slimming): a mask with one parameter per (scale, unit), the same objective and
  sparsity weight (penalty averaged over all S x U entries), fitted on its own; not a decomposition of the
  whole-unit mask.

With one scale (raster, masked models) every per-scale table is the whole table with scale 0 (computed as
the whole table: the by-scale code gives the same numbers there, to rounding; tested). Whole-set mode only.

Shape letters: L tokens, S scales, U units of a layer, E single-unit edits, B target sequences, R rows.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from memlab.errors import UsageError
from memlab.iar.config import LocalizerConfig
from memlab.iar.evalsets import EvalSets
from memlab.iar.interface import IARModel
from memlab.iar.localizers.activation import activation_by_scale
from memlab.iar.localizers.common import (COLUMNS, Inputs, chunks, gate_grads, gated, loglik_B, position_scales,
                                          scale_table)
from memlab.iar.localizers.contrast import contrast_by_scale
from memlab.iar.localizers.oracle import reference_set
from memlab.iar.localizers.hard_concrete import HardConcrete
from memlab.iar.localizers.masks import learn_mask
from memlab.iar.localizers.slimming import Slimming
from memlab.io import normalize_json, read_parquet, write_parquet
from memlab.rundir import RunDir

SCALES = "scales.parquet"


def _sum_positions(x_LxU: torch.Tensor, scale_L: torch.Tensor) -> torch.Tensor:
    """S x U: the sum over each scale's positions."""
    S = int(scale_L.max()) + 1
    return torch.zeros(S, x_LxU.shape[1], dtype=x_LxU.dtype, device=x_LxU.device).index_add_(
        0, scale_L.to(x_LxU.device), x_LxU)


def _position_gates(model: IARModel, value: float) -> dict[str, torch.Tensor]:
    return {name: torch.full((model.seq_len, spec.weight.shape[0]), value, device=model.device)
            for name, spec in model.units().items()}


def grad_act_by_scale(model: IARModel, inp: Inputs, cfg: LocalizerConfig) -> pd.DataFrame:
    scale_L = position_scales(model)
    grads = gate_grads(model, *inp.target(), _position_gates(model, 1.0), cfg.batch_size)
    return scale_table(model, {name: _sum_positions(g_LxU, scale_L) for name, g_LxU in grads.items()})


def integrated_gradients_by_scale(model: IARModel, inp: Inputs, cfg: LocalizerConfig) -> pd.DataFrame:
    tokens, labels = inp.target()
    scale_L, n, scores = position_scales(model), cfg.ig_steps, {}
    for name, spec in model.units().items():
        shape = (model.seq_len, spec.weight.shape[0])
        grads = [gate_grads(model, tokens, labels, {name: torch.full(shape, (k + 0.5) / n, device=model.device)},
                            cfg.batch_size)[name] for k in range(n)]
        scores[name] = _sum_positions(torch.stack(grads).mean(0), scale_L)
    return scale_table(model, scores)


def nll_increase_by_scale(model: IARModel, tokens_BxL: torch.Tensor, labels_B: torch.Tensor,
                          batch_size: int) -> dict[str, torch.Tensor]:
    """Per unit layer, S x U: mean over the B sequences of NLL(unit u zeroed at the positions of scale s) -
    NLL(unedited), nats per token; the E = S x U edits stacked on the batch axis, `batch_size` rows a pass."""
    dev, B = model.device, len(tokens_BxL)
    scale_L = position_scales(model).to(dev)
    S = int(scale_L.max()) + 1
    out = {}
    with torch.no_grad():
        base_B = torch.cat([loglik_B(model, tokens_BxL[i], labels_B[i]) for i in chunks(B, batch_size)])
        for name, spec in model.units().items():
            U = spec.weight.shape[0]
            s_E, u_E = torch.arange(S, device=dev).repeat_interleave(U), torch.arange(U, device=dev).repeat(S)
            e_N, b_N = torch.arange(S * U).repeat_interleave(B), torch.arange(B).repeat(S * U)
            ll_N = torch.empty(S * U * B, dtype=torch.float64)
            for idx in chunks(len(e_N), batch_size):
                e_R, b_R = e_N[idx].to(dev), b_N[idx].to(dev)
                off_RxL = scale_L[None, :] == s_E[e_R][:, None]
                hit_RxU = torch.nn.functional.one_hot(u_E[e_R], U).bool()
                gate_RxLxU = 1.0 - (off_RxL[:, :, None] & hit_RxU[:, None, :]).float()
                with gated(model, {name: gate_RxLxU}):
                    ll_N[idx] = loglik_B(model, tokens_BxL[b_R], labels_B[b_R]).double().cpu()
            out[name] = (base_B.double().cpu()[None, :] - ll_N.view(S * U, B)).mean(1).view(S, U)
    return out


def zero_out_by_scale(model: IARModel, inp: Inputs, cfg: LocalizerConfig) -> pd.DataFrame:
    return scale_table(model, nll_increase_by_scale(model, *inp.target(), cfg.batch_size))


def oracle_by_scale(model: IARModel, inp: Inputs, cfg: LocalizerConfig) -> pd.DataFrame:
    """The oracle's contrast (memlab.iar.localizers.oracle) with the per-scale NLL increases; the same draw."""
    on_T = nll_increase_by_scale(model, *inp.target(), cfg.batch_size)
    tok_O, lab_O = reference_set(inp, cfg)
    on_O = nll_increase_by_scale(model, tok_O, lab_O, cfg.batch_size) if len(tok_O) else {k: 0.0 for k in on_T}
    return scale_table(model, {name: d - on_O[name] for name, d in on_T.items()}).assign(uses_labels=True)


def unitmem_by_scale(model: IARModel, inp: Inputs, cfg: LocalizerConfig) -> pd.DataFrame:
    from memlab.iar.unitmem import compute_unitmem

    d = inp.data
    table = compute_unitmem(model, d.train_images, d.train_labels, d.train_ids, cfg.unitmem, progress=False)
    return table.sort_values(["layer", "scale", "unit"], kind="stable").reset_index(drop=True)[
        [*COLUMNS, "k_star", "image_id"]]


BY_SCALE: dict[str, Callable[[IARModel, Inputs, LocalizerConfig], pd.DataFrame]] = {
    "unitmem": unitmem_by_scale,
    "activation": lambda m, i, c: scale_table(m, activation_by_scale(m, i, c)),
    "contrast": lambda m, i, c: scale_table(m, contrast_by_scale(m, i, c)),
    "grad-act": grad_act_by_scale, "integrated-gradients": integrated_gradients_by_scale,
    "zero-out": zero_out_by_scale,
    "hard-concrete": lambda m, i, c: learn_mask(m, i, c, HardConcrete(), "hard-concrete", by_scale=True),
    "slimming": lambda m, i, c: learn_mask(m, i, c, Slimming(), "slimming", by_scale=True),
    "oracle": oracle_by_scale}
RELATION = {"unitmem": "max", "activation": "max", "contrast": "max", "grad-act": "sum",
            "integrated-gradients": "sum", "zero-out": "separate", "hard-concrete": "separate",
            "slimming": "separate", "oracle": "separate"}


def localize_scales(name: str, model: IARModel, data, sets: EvalSets,
                    cfg: LocalizerConfig = LocalizerConfig()) -> pd.DataFrame:
    """Localizer `name`'s per-scale table (whole-set mode): layer, block, unit, scale, score (+ its columns)."""
    if name not in BY_SCALE:
        raise UsageError(f"localizer {name!r} has no per-scale scores; allowed: {', '.join(BY_SCALE)}")
    if cfg.per_image:
        raise UsageError("per-scale tables are of the whole target set: per_image must be off")
    from memlab.iar.localizers import localize

    if len(model.scale_slices()) == 1:
        return localize(name, model, data, sets, cfg).assign(scale=0)
    model.eval()
    return BY_SCALE[name](model, Inputs.build(model, data, sets, cfg.batch_size), cfg)


def localize_scales_into(out: Path, name: str, model: IARModel, data, sets: EvalSets,
                         cfg: LocalizerConfig = LocalizerConfig()) -> tuple[pd.DataFrame, dict]:
    """(per-scale table, metrics) saved in directory `out` as scales.parquet (metrics.json last); a finished
    table of the same config is read back."""
    if name not in BY_SCALE:
        raise UsageError(f"localizer {name!r} has no per-scale scores; allowed: {', '.join(BY_SCALE)}")
    rd, mode = RunDir.open(out, "iar-localize", flag="localizer directory", continue_same=True)
    config = normalize_json({"localizer": name, "by_scale": True, "config": asdict(cfg), "sets": sets.to_json()})
    if mode == "done" and rd.same_config(config) and (rd.path / SCALES).is_file():
        return read_parquet(rd.path / SCALES, what="per-scale localizer table"), rd.finished_metrics()
    shutil.rmtree(rd.state, ignore_errors=True)
    rd.start(config)
    t0 = time.perf_counter()
    table = localize_scales(name, model, data, sets, cfg)
    write_parquet(rd.path / SCALES, table)
    metrics = {"localizer": name, "arch": model.arch, "n_scales": int(table["scale"].nunique()),
               "relation": RELATION[name], "seconds": time.perf_counter() - t0}
    rd.finish(metrics)
    return table, metrics
