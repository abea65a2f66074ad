"""`slimming`: a learned continuous drop mask with an L1 penalty (network slimming's scaling factors,
as Chang et al. 2024 use them): d_u in [0, 1] (projected after each Adam step), started near 0 with seeded
noise, sparsity on mean d_u; score = d_u, dropped when d_u > 1/2. Objective, retain set and seeding:
memlab.iar.localizers.masks."""

from __future__ import annotations

import pandas as pd
import torch

from memlab.iar.config import LocalizerConfig
from memlab.iar.interface import IARModel
from memlab.iar.localizers.common import Inputs
from memlab.iar.localizers.masks import learn_mask

INIT = 0.01  # the drop starts uniform in [0, INIT]: the unedited model, nearly


class Slimming:
    def init(self, n_units: int, gen: torch.Generator) -> torch.Tensor:
        return INIT * torch.rand(n_units, generator=gen)

    def sample(self, d_U: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return d_U

    def penalty(self, d_U: torch.Tensor) -> torch.Tensor:
        return d_U.abs()

    def after_step(self, d_U: torch.Tensor) -> None:
        d_U.clamp_(0.0, 1.0)

    def final(self, d_U: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return d_U.clone(), d_U > 0.5


def slimming(model: IARModel, inp: Inputs, cfg: LocalizerConfig) -> pd.DataFrame:
    return learn_mask(model, inp, cfg, Slimming(), "slimming")
