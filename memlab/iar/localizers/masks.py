"""What the learned masks (hard-concrete, slimming) share: a drop mask d_u in [0, 1] per unit (activation
times 1 - d_u), learned with Adam to minimise

    unlikelihood(targets) + retain_weight * NLL(retain set) + sparsity * mean over all units of the penalty,

where unlikelihood = -mean log(1 - p(true token)) over the targets' scored positions (it keeps a strong
gradient while the targets are memorized, p near 1, and is 0 once they are forgotten) and the retain set is
`cfg.retain`: the training images outside the targets (default: everything else the model learned, memorized
or not; a defender has them) or the held-out images (then units that memorize anything hurt the retain NLL
and get dropped too, the targets' or not). All randomness (initialisation, noise, batch draws) comes from one
torch.Generator seeded with `cfg.seed`: the same seed gives the same mask.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd
import torch

from memlab.errors import UsageError
from memlab.iar.config import LocalizerConfig
from memlab.iar.interface import IARModel
from memlab.iar.localizers.common import Inputs, gated, log_probs, loglik_B, position_scales, scale_table, unit_table


class MaskFamily(Protocol):
    def init(self, n_units: int, gen: torch.Generator) -> torch.Tensor:
        """The mask's parameters of one layer (U, a leaf the optimiser updates)."""

    def sample(self, param_U: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """The drop mask d_U in [0, 1] of one training step (differentiable in the parameters)."""

    def penalty(self, param_U: torch.Tensor) -> torch.Tensor:
        """Per-unit sparsity cost U (expected L0, or L1 of the drop)."""

    def after_step(self, param_U: torch.Tensor) -> None:
        """Projection after the optimiser step (in place, without gradients)."""

    def final(self, param_U: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(score U: higher = dropped more surely, dropped: bool U, the deterministic mask's choice)."""


def unlikelihood_B(model: IARModel, tokens_BxL: torch.Tensor, labels_B: torch.Tensor) -> torch.Tensor:
    """-mean log(1 - p(true token)) per sequence, computed as -log of the probability of the other tokens."""
    logp_BxPxV, true_BxP = log_probs(model, tokens_BxL, labels_B)
    is_true = torch.nn.functional.one_hot(true_BxP, logp_BxPxV.shape[-1]).bool()
    return -logp_BxPxV.masked_fill(is_true, -torch.inf).logsumexp(-1).mean(1)


def _draw(n: int, batch_size: int, gen: torch.Generator) -> torch.Tensor:
    return torch.arange(n) if n <= batch_size else torch.randperm(n, generator=gen)[:batch_size]


def learn_mask(model: IARModel, inp: Inputs, cfg: LocalizerConfig, family: MaskFamily, method: str,
               by_scale: bool = False) -> pd.DataFrame:
    """The unit table of a learned drop mask (score from `family.final`, and a `dropped` column). `by_scale`:
    one mask parameter per (scale, unit), the drop of scale s applied at that scale's positions, the penalty
    the mean over all S x U entries; -> one row per (layer, unit, scale) (memlab.iar.localizers.scales)."""
    tok_T, lab_T = inp.target()
    tok_R, lab_R = inp.heldout(1, method) if cfg.retain == "heldout" else inp.others()
    if not len(tok_R):
        raise UsageError(f"localizer {method}: the retain set ({cfg.retain}) is empty")
    gen = torch.Generator().manual_seed(cfg.seed)
    specs = model.units()
    scale_L = position_scales(model).to(model.device) if by_scale else None
    S = int(scale_L.max()) + 1 if by_scale else 1

    def init(U: int) -> torch.Tensor:  # the same draws as U units times S, so one scale gives the whole mask
        p = family.init(S * U, gen)
        return p.view(S, U) if by_scale else p

    params = {name: init(spec.weight.shape[0]).to(model.device).requires_grad_(True) for name, spec in specs.items()}
    leaves = list(params.values())
    opt = torch.optim.Adam(leaves, lr=cfg.lr)
    for _ in range(cfg.steps):
        i_T, i_R = _draw(len(tok_T), cfg.batch_size, gen), _draw(len(tok_R), cfg.batch_size, gen)
        drops = {name: family.sample(p, gen) for name, p in params.items()}
        if by_scale:  # S x U -> the drop at every position, L x U
            drops = {name: d_SxU[scale_L] for name, d_SxU in drops.items()}
        with gated(model, {name: 1 - d for name, d in drops.items()}):
            forget = unlikelihood_B(model, tok_T[i_T], lab_T[i_T]).mean()
            retain = -loglik_B(model, tok_R[i_R], lab_R[i_R]).mean()
        sparse = torch.cat([family.penalty(p).flatten() for p in leaves]).mean()
        loss = forget + cfg.retain_weight * retain + cfg.sparsity * sparse
        opt.zero_grad()
        for p, g in zip(leaves, torch.autograd.grad(loss, leaves)):  # the model's parameters get no gradient
            p.grad = g
        opt.step()
        with torch.no_grad():
            for p in leaves:
                family.after_step(p)
    with torch.no_grad():
        finals = {name: family.final(p) for name, p in params.items()}
    table = (scale_table if by_scale else unit_table)(model, {name: s for name, (s, _) in finals.items()})
    return table.assign(dropped=np.concatenate([d.cpu().numpy().ravel() for _, d in finals.values()]))
