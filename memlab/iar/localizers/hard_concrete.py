"""`hard-concrete`: a learned stochastic L0 drop mask (Louizos et al. 2018, as Chang et al. 2024 use it to
localize memorized sequences): d_u = clamp(sigmoid((logit(v) + log_alpha_u) / BETA) (ZETA - GAMMA) + GAMMA,
0, 1) with v ~ U(0, 1) each step, sparsity on the expected L0 P(d_u > 0); score = log_alpha_u, dropped when
the deterministic mask clamp(sigmoid(log_alpha) (ZETA - GAMMA) + GAMMA) exceeds 1/2 (log_alpha > 0).
Objective, retain set and seeding: memlab.iar.localizers.masks."""

from __future__ import annotations

import math

import pandas as pd
import torch

from memlab.iar.config import LocalizerConfig
from memlab.iar.interface import IARModel
from memlab.iar.localizers.common import Inputs
from memlab.iar.localizers.masks import learn_mask

BETA, GAMMA, ZETA = 2.0 / 3.0, -0.1, 1.1  # temperature and stretch of the hard concrete
INIT = -2.0  # log_alpha at the start: a unit is fully dropped in about 4% of the steps


class HardConcrete:
    def init(self, n_units: int, gen: torch.Generator) -> torch.Tensor:
        return INIT + 0.01 * torch.randn(n_units, generator=gen)

    def sample(self, log_alpha_U: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        v_U = torch.rand(log_alpha_U.shape, generator=gen).clamp(1e-6, 1 - 1e-6).to(log_alpha_U.device)
        s_U = torch.sigmoid((torch.log(v_U) - torch.log1p(-v_U) + log_alpha_U) / BETA)
        return (s_U * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)

    def penalty(self, log_alpha_U: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(log_alpha_U - BETA * math.log(-GAMMA / ZETA))

    def after_step(self, log_alpha_U: torch.Tensor) -> None:
        pass

    def final(self, log_alpha_U: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d_U = (torch.sigmoid(log_alpha_U) * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)
        return log_alpha_U, d_U > 0.5


def hard_concrete(model: IARModel, inp: Inputs, cfg: LocalizerConfig) -> pd.DataFrame:
    return learn_mask(model, inp, cfg, HardConcrete(), "hard-concrete")
